"""`owsd predict` end to end on the CI config: the same answers as the IIN on the cached pairs, and refusals."""

import json
import re
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch

from owsd import prediction
from owsd.cli import main
from owsd.commands import predict as predict_command
from owsd.components.ledger import KeyLedger
from owsd.data.cache import PairCache
from owsd.errors import CloudUnavailableError
from owsd.iin_module import IINModule
from tests.conftest import TINY_IMAGES, one_rank_output, refusal, row_caches, run_torchrun, tiny_args


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    """The CI config fitted once: (its work folder, the best OWSD checkpoint)."""
    workdir = tmp_path_factory.mktemp("predict")
    main(tiny_args(workdir))
    (checkpoint,) = (workdir / "runs").rglob("embedding+cloud-*.ckpt")
    return workdir, checkpoint


def predict_args(workdir: Path, checkpoint: Path, *images: Path | str, out: str = "predictions") -> list[str]:
    """`images` may end with further options (`--batch_size`, `8`)."""
    config = tiny_args(workdir, subcommand="predict")[1:]
    return ["predict", *config[:1], *config[1:], "--ckpt_path", str(checkpoint), "--images", *map(str, images),
            "--out", str(workdir / out)]  # fmt: skip


def test_predict_answers_as_the_iin_does_on_the_cached_test_pairs(fitted, capsys):
    workdir, checkpoint = fitted
    ledger = KeyLedger(workdir / "ledger.sqlite", "test")
    before = ledger.keys()
    main(predict_args(workdir, checkpoint, TINY_IMAGES))
    (after,) = ledger.keys()
    assert (after.exposed + after.resends) - (before[0].exposed + before[0].resends) == 20  # every image sent
    rows = json.loads((workdir / "predictions" / "predictions.json").read_text())
    assert len(rows) == 20 and all(row["true_label"] == Path(row["image"]).parent.name for row in rows)
    assert "20 images in" in capsys.readouterr().out
    model = IINModule.load_from_checkpoint(checkpoint).eval()
    table = PairCache.existing(row_caches(workdir / "cache")[0]).table()
    ids = table.image_ids
    with torch.no_grad():
        cached = torch.softmax(model({"embedding": table.fields["embedding"], "cloud": table.fields["cloud"]}), 1)
    by_image = {Path(row["image"]).relative_to(TINY_IMAGES).as_posix(): row for row in rows}
    for image_id, probabilities in zip(ids, cached):
        top = by_image[image_id]["top"][0]
        assert top["label"] == model.hparams.classes[int(probabilities.argmax())]
        assert top["probability"] == pytest.approx(float(probabilities.max()), abs=1e-4)


def test_predict_refuses_another_key_a_missing_key_and_unreadable_images(fitted, tmp_path, capsys):
    workdir, checkpoint = fitted
    other = tmp_path / "other"
    other.mkdir()
    main(["keygen", str(other / "keys" / "test.key")])
    (other / "cache").symlink_to(workdir / "cache")
    assert "was trained for another key (data.scrambler.key_file)" in refusal(
        predict_args(other, checkpoint, TINY_IMAGES), capsys
    )
    assert "test.key does not exist" in refusal(predict_args(tmp_path / "nokey", checkpoint, TINY_IMAGES), capsys)
    assert not (tmp_path / "nokey" / "keys").exists()
    broken = tmp_path / "images"
    shutil.copytree(TINY_IMAGES, broken)
    (broken / "cat" / "broken.png").write_bytes(b"not a png")
    stderr = refusal(predict_args(workdir, checkpoint, broken, out="refused"), capsys)
    assert "cannot read image" in stderr and "broken.png" in stderr
    assert "Traceback" not in stderr and not (workdir / "refused").exists()
    missing = refusal(predict_args(workdir, checkpoint, tmp_path / "missing", out="refused"), capsys)
    assert "missing does not exist" in missing


@pytest.mark.parametrize("setting", ["--batch_size", "--top_k"])
def test_predict_refuses_a_count_of_zero_in_one_line(fitted, capsys, setting):
    workdir, checkpoint = fitted
    with pytest.raises(SystemExit) as exit_info:
        main([*predict_args(workdir, checkpoint, TINY_IMAGES, out="zero"), setting, "0"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and setting.lstrip("-") in error and "Traceback" not in error
    assert not (workdir / "zero").exists()


def test_predicting_the_same_images_again_are_resends_within_a_spent_budget(fitted, tmp_path, capsys):
    workdir, checkpoint = fitted
    mine = tmp_path / "mine"
    mine.mkdir()
    for shared in ("cache", "keys"):
        (mine / shared).symlink_to(workdir / shared)
    shutil.copy(workdir / "ledger.sqlite", mine / "ledger.sqlite")
    main(predict_args(mine, checkpoint, TINY_IMAGES))
    ledger = KeyLedger(mine / "ledger.sqlite", "test")
    (key,) = ledger.keys()
    main(["key", "budget", key.fingerprint, str(key.exposed), "--ledger", str(mine / "ledger.sqlite")])
    main(predict_args(mine, checkpoint, TINY_IMAGES, out="again"))  # every image already seen: 20 resends
    (after,) = ledger.keys()
    assert (after.exposed, after.resends) == (key.exposed, key.resends + 20)
    assert json.loads((mine / "again" / "predictions.json").read_text()) == json.loads(
        (mine / "predictions" / "predictions.json").read_text()
    )


def test_a_cloud_failing_mid_way_keeps_the_answered_images_and_the_rerun_sends_only_the_others(
    fitted, monkeypatch, capsys
):
    workdir, checkpoint = fitted
    # batches of 8 in both: float sums over a batch of another size may differ in the last digit
    main(predict_args(workdir, checkpoint, TINY_IMAGES, "--batch_size", "8", out="reference"))
    calls = []

    class FailingOnTheSecondBatch(prediction.Predictor):
        def __call__(self, images, image_ids):
            calls.append(len(image_ids))
            if len(calls) == 2:
                raise CloudUnavailableError("cloud http://127.0.0.1:9 did not answer after 3 tries")
            return super().__call__(images, image_ids)

    monkeypatch.setattr(predict_command, "Predictor", FailingOnTheSecondBatch)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(predict_args(workdir, checkpoint, TINY_IMAGES, "--batch_size", "8", out="flaky"))
    partial = workdir / "flaky.partial"
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in error
    assert error.endswith(f"kept {partial} (8 of 20 images answered, the others in unanswered.txt); "
                          "run the same command again to resume")  # fmt: skip
    unanswered = (partial / "unanswered.txt").read_text().split()
    assert len(unanswered) == 12 and len((partial / "answered.jsonl").read_text().splitlines()) == 8

    monkeypatch.setattr(predict_command, "Predictor", prediction.Predictor)
    main(predict_args(workdir, checkpoint, TINY_IMAGES, "--batch_size", "8", out="flaky"))
    out = capsys.readouterr().out
    assert "12 images in" in out and "(and 8 answered before)" in out
    assert sorted(p.name for p in (workdir / "flaky").iterdir()) == [
        "predictions.csv",
        "predictions.json",
        "provenance.json",
    ]
    assert json.loads((workdir / "flaky" / "predictions.json").read_text()) == json.loads(
        (workdir / "reference" / "predictions.json").read_text()
    )


def test_predict_takes_the_best_checkpoint_of_the_newest_fit_by_itself(fitted, capsys, caplog):
    workdir, checkpoint = fitted
    args = [arg for arg in predict_args(workdir, checkpoint, TINY_IMAGES, out="auto") if arg != str(checkpoint)]
    args.remove("--ckpt_path")
    main(args)
    assert f"checkpoint {checkpoint} (the newest fit's best)" in caplog.text


def test_predict_on_two_torchrun_processes_writes_and_prints_what_one_process_does(fitted):
    """Before: both ranks of a launch sent every image and wrote one output folder."""
    workdir, checkpoint = fitted
    one = one_rank_output(predict_args(workdir, checkpoint, TINY_IMAGES, out="one"))
    two = run_torchrun(predict_args(workdir, checkpoint, TINY_IMAGES, out="two"), cwd=workdir)
    assert two.returncode == 0, two.stderr[-2000:]
    drop_speed = partial(re.sub, r" in [\d.]+ s \([\d.]+ images/s\)", "")
    assert drop_speed(two.stdout) == drop_speed(one) and two.stdout.count("20 images") == 1
    for name in ("predictions.json", "predictions.csv"):
        assert (workdir / "two" / name).read_text() == (workdir / "one" / name).read_text()
