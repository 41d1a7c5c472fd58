"""Runs that differ only in their cloud share the baselines that send nothing, repetition by repetition, on the
same images; the report pairs them and never pairs other images or other configs."""

from pathlib import Path

import pytest

from owsd.errors import DataError
from owsd.experiments.records import RunFolder
from owsd.experiments.report import build_report
from owsd.experiments.shared_baselines import share_local_baselines

CONFIG = {
    "model": {"hidden_size": 128},
    "data": {"encoders": [{"name": "lite0"}], "cloud": {"checkpoint": "cnn2000"}, "plaintext_baseline": True},
    "experiment": {"protocol": "regime", "inputs": ["embedding+cloud", "embedding"], "linear_probe": True,
                   "row": "lite0, cnn2000", "regime": {"encoder": "Lite0", "cloud": "CNN on 2,000"}},
    "out": "runs/lite0_cnn2000",
}  # fmt: skip
PIPELINE = {"source": {"kind": "MnistSource", "items_sha256": "abc"}, "encoders": ["lite0"], "cloud": "c"}


def record(seed: int, per_label: int, owsd: float, local: dict | None = None, split: str | None = None) -> dict:
    methods = {"embedding+cloud": {"top1": owsd, "top5": 1.0, "cloud_class_top1": 0.5, "epochs": 9, "seconds": 2.0}}
    methods |= local or {}
    return {"seed": seed, "recipe": "tuned", "encoders": 1, "train_per_label": per_label, "status": "ok",
            "split_sha256": split or f"split-{seed}-{per_label}", "methods": methods}  # fmt: skip


def local(iin: float, probe: float) -> dict:
    return {
        "embedding": {"top1": iin, "top5": 1.0, "cloud_class_top1": 0.7, "epochs": 12, "seconds": 3.0},
        "linear_probe": {"top1": probe, "top5": 1.0},
    }


def folder(name: str, records: list[dict], cloud: str, measures_local: bool = True, **config_changes) -> RunFolder:
    config = {**CONFIG, "out": f"runs/{name}", **config_changes}
    config["data"] = {**CONFIG["data"], "cloud": {"checkpoint": cloud}}
    config["experiment"] = {**CONFIG["experiment"], "row": name, "regime": {"encoder": "Lite0", "cloud": cloud}}
    if not measures_local:
        config["experiment"] |= {"inputs": ["embedding+cloud"], "linear_probe": False}
    run = {"protocol": "regime", "row": name, "regime": config["experiment"]["regime"], "pipeline": PIPELINE,
           "precompute_seconds": 1, "total_seconds": 2}  # fmt: skip
    return RunFolder(Path(name), run, records, config)


def lender_and_borrower(borrower_split: str | None = None, **config_changes) -> list[RunFolder]:
    lender = folder("lite0_cnn2000", [record(s, 3, 0.9, local(0.80, 0.86)) for s in (0, 1)], "cnn2000")
    borrowed = [record(s, 3, 0.84 + s / 100, split=borrower_split) for s in (0, 1)]
    return [lender, folder("lite0_cnn500", borrowed, "cnn500", measures_local=False, **config_changes)]


def test_a_run_measuring_only_owsd_takes_the_same_repetitions_baselines_from_its_lender():
    lender, borrower = share_local_baselines(lender_and_borrower())
    assert lender == lender_and_borrower()[0]  # the lender is left as it was
    assert borrower.run["baselines_from"] == ["lite0_cnn2000"]
    for seed, shared in enumerate(borrower.records):
        assert shared["methods"]["embedding+cloud"]["top1"] == 0.84 + seed / 100  # its own OWSD, untouched
        assert shared["methods"]["linear_probe"] == {"top1": 0.86, "top5": 1.0}
        # the lender's agreement with its own cloud is not the borrower's: dropped
        assert shared["methods"]["embedding"] == {"top1": 0.80, "top5": 1.0, "epochs": 12, "seconds": 3.0}
        assert shared["measured_in"] == {"embedding": "lite0_cnn2000", "linear_probe": "lite0_cnn2000"}


def test_the_report_pairs_the_borrowed_baselines_per_seed_and_counts_only_the_runs_own_fits(tmp_path):
    report = build_report(lender_and_borrower(), tmp_path)
    probe = "linear probe on the embedding (sends nothing)"
    assert f"| Lite0 | cnn500 | 3 | -1.5 (0.7) | {probe} | +4.5 (0.7) |" in report  # 84, 85 against 86 and 80
    assert "measured once per encoder" in report
    assert "cloud `c`; baselines that send nothing from `lite0_cnn2000`" in report
    (timing,) = [line for line in report.splitlines() if line.startswith("| lite0_cnn500 |")]
    assert "| 2.0 |" in timing  # the mean of its own OWSD fits, not of the lender's embedding IIN's 3 s


def test_a_baseline_is_never_paired_with_other_images():
    with pytest.raises(DataError, match="lite0_cnn500 and lite0_cnn2000 differ in the images of seed 0"):
        share_local_baselines(lender_and_borrower(borrower_split="another split"))


@pytest.mark.parametrize(
    "change",
    [
        {"model": {"hidden_size": 512}},  # another IIN recipe: the embedding IIN would differ
        {"data": {"encoders": [{"name": "lite2"}], "cloud": {}}},  # another encoder
        {"seed_everything": 1},
    ],
)
def test_a_run_with_no_lender_of_its_config_is_refused_not_dropped(change):
    lender, borrower = lender_and_borrower()
    config = {**borrower.config, **change}
    config["data"] = {**borrower.config["data"], **change.get("data", {})}
    with pytest.raises(DataError, match="lite0_cnn500 measures no baseline that sends nothing, and no other run"):
        share_local_baselines([lender, RunFolder(borrower.folder, borrower.run, borrower.records, config)])


def test_a_run_alone_is_refused_and_other_encoder_weights_never_lend():
    lender, borrower = lender_and_borrower()
    with pytest.raises(DataError, match="no other run given shares its config"):
        share_local_baselines([borrower])
    reweighted = {**lender.run, "pipeline": {**PIPELINE, "encoder_identities": [{"weights": "sha256-other"}]}}
    with pytest.raises(DataError, match="no other run given shares its config"):  # same config, other weights file
        share_local_baselines([RunFolder(lender.folder, reweighted, lender.records, lender.config), borrower])


def test_a_repetition_whose_lender_failed_is_refused_naming_it():
    lender, borrower = lender_and_borrower()
    lender.records[1] = {**lender.records[1], "status": "failed", "error": "boom", "methods": {}}
    with pytest.raises(
        DataError, match=r"lite0_cnn500 \(seed 1, 3 per label, recipe tuned\) .* lenders \(lite0_cnn2000\)"
    ):
        share_local_baselines([lender, borrower])


def test_records_written_before_split_sha256_are_not_paired():
    lender, borrower = lender_and_borrower()
    del lender.records[0]["split_sha256"]
    with pytest.raises(DataError, match="records no split_sha256"):
        share_local_baselines([lender, borrower])


def test_each_missing_method_comes_from_the_first_lender_that_measured_it():
    lender, borrower = lender_and_borrower()
    probe_only = [{**r, "methods": {"linear_probe": {"top1": 0.5, "top5": 1.0}}} for r in lender.records]
    first = RunFolder(Path("probe_only"), lender.run, probe_only, {**lender.config, "out": "runs/probe_only"})
    shared = share_local_baselines([first, lender, borrower])[2]
    assert shared.run["baselines_from"] == ["lite0_cnn2000", "probe_only"]
    assert shared.records[0]["measured_in"] == {"embedding": "lite0_cnn2000", "linear_probe": "probe_only"}
    assert shared.records[0]["methods"]["linear_probe"]["top1"] == 0.5
