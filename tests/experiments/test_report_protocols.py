"""`owsd report` compares with the paper only like with like, and the regime search reports paired gains."""

from pathlib import Path

import pytest
from PIL import Image

from owsd.experiments.records import RunFolder
from owsd.experiments.regime import paired_gain
from owsd.experiments.report import build_report


def record(seed: int, owsd: float, embedding: float, probe: float, per_label: int | None = None) -> dict:
    methods = {"embedding+cloud": {"top1": owsd, "top5": 1.0}, "embedding": {"top1": embedding, "top5": 1.0}}
    methods["linear_probe"] = {"top1": probe, "top5": 1.0}
    return {"seed": seed, "recipe": "paper", "encoders": 1, "train_per_label": per_label, "status": "ok",
            "methods": methods}  # fmt: skip


def run(folder: str, same_data: bool, records: list[dict], **extra) -> RunFolder:
    meta = {"protocol": "uc1", "row": folder, "paper_row": "table1/CIFAR-10", "same_data_as_paper": same_data}
    meta |= {"pipeline": {"source": {}, "encoders": ["e"], "cloud": "c"}, "precompute_seconds": 1, "total_seconds": 2}
    return RunFolder(Path(folder), {**meta, **extra}, records)


def table_rows(report: str, setting: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith(f"| {setting}") and "(OWSD)" in line]


def test_a_difference_only_on_the_papers_own_data_and_the_papers_number_named_by_its_data_elsewhere(tmp_path):
    records = [record(seed, 0.90, 0.85, 0.80) for seed in range(3)]
    report = build_report([run("cifar", True, records), run("mnist", False, records)], tmp_path)
    header = next(line for line in report.splitlines() if line.startswith("| setting | method"))
    assert "top-1 (paper) | top-1 Δ pts" in header and "top-1 (paper, other data)" in header
    (cifar,) = table_rows(report, "cifar")
    (mnist,) = table_rows(report, "mnist")
    assert "| 86.5% (0.017) | +3.5 | — |" in cifar  # ours 90.0% − the paper's 86.5%
    assert "| — | — | 86.5% (0.017) on CIFAR-10 test → VGG16 cloud on its train split |" in mnist
    alone = build_report([run("mnist", False, records)], tmp_path)
    assert "Δ pts" not in next(line for line in alone.splitlines() if line.startswith("| setting | method"))


def test_the_regime_gain_is_paired_per_seed_against_the_best_local_method(tmp_path):
    records = [record(0, 0.90, 0.80, 0.86), record(1, 0.84, 0.82, 0.86)]
    gain, against = paired_gain(records)
    assert against == "linear_probe"  # mean 0.86 beats the IIN on the embedding's 0.81
    assert (gain.mean, gain.std, gain.n) == (pytest.approx(1.0), pytest.approx(18**0.5), 2)  # gains +4 and −2
    over_iin, against = paired_gain(records, ("embedding",))  # the cloud's own part: +10 and +2
    assert against == "embedding" and (over_iin.mean, over_iin.n) == (pytest.approx(6.0), 2)
    searched = [  # OWSD 0.5 + size/100; the IIN on the embedding 0.50, the linear probe 0.52 (the best local)
        run(f"regime-{size}", False, [record(s, 0.5 + size / 100, 0.5, 0.52, size) for s in range(2)],
            protocol="regime", regime={"encoder": "Lite0", "cloud": "CNN on 100 digits"}, paper_row=None)
        for size in (1, 4, 6)
    ]  # fmt: skip
    report = build_report(searched, tmp_path)
    probe = "linear probe on the embedding (sends nothing)"
    assert f"| Lite0 | CNN on 100 digits | 4 | +2.0 (0.0) | {probe} | +4.0 (0.0) |" in report
    assert (
        "1 of 3 settings reach +3 points; the largest gain is +4.0 (Lite0, CNN on 100 digits, 6 per label). "
        "Over the same IIN without the cloud, 2 of 3 reach it." in report
    )
    with Image.open(tmp_path / "regime-cnn-on-100-digits.png") as figure:
        assert figure.width > 2 * figure.height  # two panels: over the best local method, over the same IIN
