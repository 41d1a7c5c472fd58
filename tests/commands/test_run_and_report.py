"""`owsd run` and `owsd report` end to end on 200 real MNIST digits with tiny models, and bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from owsd.cli import main
from tests.conftest import MNIST_TINY_CONFIG, REPO, refusal
from tests.helpers import CRASHING_LR, crashing_fits

REPO_ON_PATH = {**os.environ, "PYTHONPATH": str(REPO)}
SEEDS_AND_SIZES = ["--experiment.protocol=uc5", "--experiment.seeds=[0,1]", "--experiment.train_per_label=[2,5]"]
BROKEN_RECIPE = f'--experiment.recipes=[{{"name": "broken", "lr": {CRASHING_LR}}}]'  # its fits crash


def owsd_run(*args: str) -> None:
    main(["run", "--config", str(MNIST_TINY_CONFIG), *args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two seeds × two training sizes × two recipes (one that crashes), then one of them again from the cache."""
    workdir = tmp_path_factory.mktemp("run")
    before = os.getcwd()
    os.chdir(workdir)
    try:
        with crashing_fits(), pytest.raises(SystemExit) as exit_code:  # the broken recipe's runs fail: exit 1
            owsd_run(*SEEDS_AND_SIZES, BROKEN_RECIPE, "--out", "first")
        assert exit_code.value.code == 1
        owsd_run(
            "--experiment.protocol=uc5", "--experiment.seeds=[1]", "--experiment.train_per_label=[5]", "--out", "again"
        )
    finally:
        os.chdir(before)
    return workdir


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]


def test_every_repetition_is_recorded_with_the_iins_and_the_linear_probe(runs):
    rows = records(runs / "first")
    assert [(r["recipe"], r["train_per_label"], r["seed"]) for r in rows] == [
        (recipe, size, seed) for recipe in ("paper", "broken") for size in (2, 5) for seed in (0, 1)
    ]
    for row in rows[:4]:
        assert row["status"] == "ok"
        assert set(row["methods"]) == {"embedding+cloud", "embedding", "linear_probe"}
        assert row["images"]["train"] == 10 * row["train_per_label"] and row["images"]["test"] == 60
        assert 0 <= row["methods"]["embedding"]["top1"] <= row["methods"]["embedding"]["top5"] <= 1
    assert all(r["status"] == "failed" and "this recipe's fit crashes" in r["error"] for r in rows[4:])
    run = json.loads((runs / "first" / "run.json").read_text())
    assert run["protocol"] == "uc5" and run["row"] == "mnist_tiny" and run["precompute_seconds"] > 0


def test_a_second_run_costs_only_iin_fits_and_measures_the_same(runs):
    first, again = records(runs / "first"), records(runs / "again")
    assert json.loads((runs / "again" / "run.json").read_text())["precompute_seconds"] < 1
    assert len(again) == 1 and (again[0]["seed"], again[0]["train_per_label"]) == (1, 5) == (first[3]["seed"], 5)
    for method in ("embedding+cloud", "embedding", "linear_probe"):  # seed 1 at 5 per label, measured again
        assert again[0]["methods"][method]["top1"] == first[3]["methods"][method]["top1"]


def test_the_report_shows_failed_seeds_as_missing_and_draws_figure_2(runs, tmp_path):
    main(["report", str(runs / "first"), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "README.md").read_text()
    assert "## Figure 2" in text and "## What the cloud adds" in text and "Over 2 settings the cloud adds" in text
    assert "| mnist_tiny, 2/label, paper recipe | IIN embedding+cloud (OWSD) |" in text
    assert "0/2; seed 0, 1 failed" in text  # the broken recipe: never averaged into a number
    assert (tmp_path / "report" / "figure2-mnist-tiny-paper.png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "report" / "figure2-mnist-tiny-broken.png").exists()


def test_the_report_refuses_two_experiments_in_one_row_and_a_folder_that_is_not_a_run(runs, tmp_path, capsys):
    stderr = refusal(["report", str(runs / "first"), str(runs / "again"), "--out", str(tmp_path / "r")], capsys)
    assert "both fill row 'mnist_tiny' of uc5" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "r").exists()
    stderr = refusal(["report", str(tmp_path), "--out", str(tmp_path / "r")], capsys)
    assert "is not a run folder of `owsd run`: run.json is missing" in stderr
    stderr = refusal(["report", str(runs / "first" / "runs.jsonl"), "--out", str(tmp_path / "r")], capsys)  # a file
    assert "runs.jsonl is not a run folder of `owsd run`: it is a file" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "r").exists()


def test_a_run_of_owsd_alone_is_reported_with_the_baselines_of_the_same_config_on_the_same_images(
    runs, tmp_path, monkeypatch, capsys
):
    """What the regime search does per encoder: one run measures the baselines, the others only OWSD."""
    monkeypatch.chdir(runs)
    owsd_only = ["--experiment.inputs=[embedding+cloud]", "--experiment.linear_probe=false", "--experiment.row=alone"]
    owsd_run("--experiment.protocol=uc5", "--experiment.seeds=[1]", "--experiment.train_per_label=[5]", *owsd_only,
             "--out", "alone")  # fmt: skip
    (alone,), (again,) = records(runs / "alone"), records(runs / "again")
    assert set(alone["methods"]) == {"embedding+cloud"} and alone["split_sha256"] == again["split_sha256"]
    assert alone["methods"]["embedding+cloud"]["top1"] == again["methods"]["embedding+cloud"]["top1"]
    main(["report", str(runs / "again"), str(runs / "alone"), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "README.md").read_text()
    (mine,) = [line for line in text.splitlines() if line.startswith("| uc5 | mnist_tiny, 5/label")]
    (borrowed,) = [line for line in text.splitlines() if line.startswith("| uc5 | alone, 5/label")]
    assert borrowed.split("|")[3:] == mine.split("|")[3:]  # OWSD, the best local baseline and the gain
    assert "- `alone`: MnistSource; encoders" in text and "baselines that send nothing from `again`" in text
    stderr = refusal(["report", str(runs / "alone"), "--out", str(tmp_path / "lone")], capsys)
    assert "alone measures no baseline that sends nothing" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "lone").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--experiment.seeds=[]", "experiment.seeds is empty"),
        ("--experiment.train_per_label=[15]", "train_per_label=15 but label '0' (0) has 11 training images"),
        ("--data.split.images_per_label=600", "images_per_label asks for 600"),
        ("--data.split.labels.count=11", "data.split.labels.count=11 but the dataset has 10 labels"),
        ("--experiment.paper_row=table9/x", "experiment.paper_row='table9/x' is none of the paper's rows"),
        ("--experiment.ensemble_sizes=[2]", "ensemble_sizes=[2] but data.encoders lists 1"),
    ],
)
def test_bad_experiment_settings_fail_in_one_line_before_any_work(workdir, capsys, override, message):
    stderr = refusal(["run", "--config", str(MNIST_TINY_CONFIG), override, "--out", "out"], capsys)
    assert message in stderr and "Traceback" not in stderr
    assert not Path("out").exists() and not Path(".owsd/cache").exists()


def test_the_encoder_head_is_scored_where_the_labels_are_its_classes_and_refused_elsewhere(workdir, capsys):
    from PIL import Image
    from timm.data import ImageNetInfo

    wnids = ImageNetInfo().label_names()
    generator = np.random.default_rng(0)
    for label in (1, 7, 42):  # three ImageNet classes, four images each
        folder = workdir / "val" / wnids[label]
        folder.mkdir(parents=True)
        for index in range(4):
            Image.fromarray(generator.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    imagenet = ["--data.source=owsd.data.sources.ImageNetValSource", f"--data.source.root={workdir / 'val'}"]
    tiny = ["--data.split.images_per_label=4", "--data.split.test_fraction=0.5", "--data.split.val_fraction=0.5"]
    tiny.append(f"--data.split.labels.names=[{wnids[1]},{wnids[7]},{wnids[42]}]")
    owsd_run(*imagenet, *tiny, "--experiment.seeds=[0]", "--experiment.encoder_head=true", "--out", "head")
    (record,) = records(workdir / "head")
    assert record["labels"] == [wnids[1], wnids[7], wnids[42]]
    assert 0 <= record["methods"]["encoder_head"]["top1"] <= record["methods"]["encoder_head"]["top5"] == 1.0
    stderr = refusal(
        ["run", "--config", str(MNIST_TINY_CONFIG), "--experiment.encoder_head=true", "--out", "x"], capsys
    )
    assert "head has 1000 classes but the source has 10 labels" in stderr


def without_timings(value):
    """A record with its seconds left out: the one thing a resumed run cannot repeat."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "seconds" not in k}
    return [without_timings(v) for v in value] if isinstance(value, list) else value


def test_sigterm_keeps_the_finished_runs_and_the_same_command_resumes(runs, monkeypatch, caplog):
    """Stopped after its first record, `owsd run` exits 143 in one line; run again, it skips what it kept and
    ends with the records of the uninterrupted run."""
    args = ["run", "--config", str(MNIST_TINY_CONFIG), *SEEDS_AND_SIZES, BROKEN_RECIPE, "--out", "stopped"]
    command = [sys.executable, "-m", "tests.crashing_owsd", *args]
    with subprocess.Popen(command, cwd=runs, stderr=subprocess.PIPE, text=True, env=REPO_ON_PATH) as process:
        partial = runs / "stopped.partial" / "runs.jsonl"
        deadline = time.monotonic() + 240
        while not (partial.exists() and partial.read_text().count("\n") >= 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and time.monotonic() - stopped < 15
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and last.startswith("owsd: stopped by SIGTERM; kept ") and "resume" in last
    kept = len(records(runs / "stopped.partial"))
    assert 1 <= kept < 8 and not (runs / "stopped").exists()

    monkeypatch.chdir(runs)  # resumed in this process: a fresh one costs ~9 s of imports
    with crashing_fits(), pytest.raises(SystemExit) as resumed:
        main(args)
    assert resumed.value.code == 1  # the broken recipe's runs fail, as in the uninterrupted run
    assert "resuming from" in caplog.text and len(re.findall(r"\brun \d of 8\b", caplog.text)) == 8 - kept
    assert without_timings(records(runs / "stopped")) == without_timings(records(runs / "first"))
    assert sorted(p.name for p in (runs / "stopped").iterdir()) == [
        "config.yaml",
        "provenance.json",
        "run.json",
        "runs.jsonl",
    ]
    assert not (runs / "stopped.partial").exists()
