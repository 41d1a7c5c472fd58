"""`owsd fit|validate|test`: a checkpoint is evaluated only on the pipeline it was trained for."""

from pathlib import Path

import pytest

from owsd.cli import main
from tests.conftest import refusal, row_caches, tiny_args


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("train")
    main(tiny_args(workdir, "--trainer.max_epochs", "1"))
    (checkpoint,) = (workdir / "runs").rglob("embedding+cloud-*.ckpt")
    return workdir, checkpoint


def test_a_checkpoint_is_tested_on_its_own_pipeline_and_only_fit_writes_under_its_root(fitted, capsys):
    workdir, checkpoint = fitted
    before = sorted((workdir / "runs").rglob("*"))
    for subcommand in ("test", "validate"):
        main(tiny_args(workdir, "--ckpt_path", str(checkpoint), subcommand=subcommand))
    assert "Traceback" not in capsys.readouterr().err
    assert sorted((workdir / "runs").rglob("*")) == before  # no version_N of an evaluation beside the fits


@pytest.mark.parametrize(
    "change, message",
    [
        (["--data.scrambler.key_file", "{other}/other.key"], "was trained for another key (data.scrambler.key_file)"),
        (["--trainer.precision", "bf16-mixed"], "was trained for another precision (trainer.precision)"),
        (["--data.scrambler.size", "64"], "was trained for another generator (data.scrambler.size/channels)"),
    ],
)
@pytest.mark.parametrize("subcommand", ["fit", "validate", "test"])
def test_a_checkpoint_of_another_pipeline_is_refused(fitted, tmp_path, capsys, subcommand, change, message):
    workdir, checkpoint = fitted
    overrides = [arg.format(other=tmp_path) for arg in change]
    if "--data.scrambler.key_file" in change:
        main(["key", "new", overrides[1]])
    args = tiny_args(workdir, "--ckpt_path", str(checkpoint), *overrides, subcommand=subcommand)
    if "--data.scrambler.key_file" in change:  # tiny_args names the fitted key first; the later flag wins
        args += ["--data.scrambler.key_file", overrides[1]]
    stderr = refusal(args, capsys)
    assert message in stderr and "Traceback" not in stderr, stderr[-2000:]


CI_TABLE = """\
OWSD test accuracy on 10 images                    top-1   top-5
IIN embedding+cloud (OWSD)                         0.100   0.700
linear probe on the embedding (sends nothing)      0.300   0.800"""  # printed by the code before the Pipeline


def test_the_ci_config_prints_the_table_it_printed_before_the_pipeline(workdir, capsys):
    key = workdir / "keys" / "test.key"  # where tiny_args points: a fixed key, so the numbers are fixed too
    key.parent.mkdir()
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    main(tiny_args(workdir))
    assert capsys.readouterr().out.strip() == CI_TABLE


def test_without_validation_images_the_iin_trains_every_epoch_and_keeps_its_last_weights(workdir, capsys):
    main(tiny_args(workdir, "--data.split.val_fraction", "0", "--trainer.max_epochs", "3"))
    assert "IIN embedding+cloud: trained 3 epochs" in capsys.readouterr().err
    assert [path.name for path in (workdir / "runs").rglob("*.ckpt")] == ["embedding+cloud-2.ckpt"]


def test_a_validation_fraction_that_leaves_no_image_is_one_error(workdir, capsys):
    stderr = refusal(tiny_args(workdir, "--data.split.val_fraction", "0.01"), capsys)
    assert "data.split.val_fraction=0.01 leaves no validation image" in stderr and "Traceback" not in stderr


def test_a_bf16_fit_runs_end_to_end_under_its_own_cache(workdir, capsys):
    """The CI config's real Keras cloud in bfloat16: its answers are still probabilities (float32 softmax)."""
    main(tiny_args(workdir, "--trainer.precision", "bf16-mixed", "--trainer.max_epochs", "1"))
    assert "IIN embedding+cloud (OWSD)" in capsys.readouterr().out
    (folder,) = row_caches(workdir / "cache")
    assert '"precision": "bf16-mixed"' in (folder / "manifest.json").read_text()
