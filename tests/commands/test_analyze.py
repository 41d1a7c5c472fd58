"""`owsd analyze` end to end on 200 real MNIST digits with tiny models."""

import csv
import json

import pytest
from PIL import Image

from owsd.cli import main
from owsd.components.ledger import DEFAULT_LEDGER, KeyLedger
from tests.conftest import MNIST_TINY_CONFIG, refusal

FIGURES = {"top1_intersection", "top5_intersection", "top1_confidence_drop", "top5_confidence_drop"}
FIGURES |= {"entropy_plain", "entropy_scrambled", "relu_zero_fraction", "pixel_std", "images"}
FIGURES |= {"majority_answer_share_plain", "majority_answer_share_scrambled"}


def test_analyze_writes_figures_pngs_and_logs_them(workdir, capsys):
    logger = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "logs"]
    main(["analyze", "--config", str(MNIST_TINY_CONFIG), "--out", "analysis", *logger])
    saved = json.loads((workdir / "analysis" / "analysis.json").read_text())
    figures = saved["figures"]
    assert set(figures) == FIGURES | {f"{name}_std" for name in FIGURES - {"images"}} and figures["images"] == 200
    assert saved["keys"] == 2 and len(saved["per_key"]) == 2
    first, second = (key["relu_zero_fraction"] for key in saved["per_key"])
    assert first != second, "two fresh keys, two generators"
    assert figures["relu_zero_fraction"] == pytest.approx((first + second) / 2)
    assert not (workdir / ".owsd" / "keys").exists(), "the config's key is never read nor created"
    assert {key.assessment for key in KeyLedger(workdir / DEFAULT_LEDGER, "test").keys()} == {"analyze"}
    assert 0 <= figures["top1_intersection"] <= 1 and 0 < figures["relu_zero_fraction"] < 1
    assert figures["entropy_scrambled"] > 0 and figures["pixel_std"] > 20
    grid = Image.open(workdir / "analysis" / "pairs.png")
    assert grid.width > grid.height  # 8 pairs side by side
    assert Image.open(workdir / "analysis" / "pca.png").format == "PNG"
    (metrics,) = (workdir / "logs").rglob("metrics.csv")
    row = next(csv.DictReader(metrics.open()))
    assert float(row["analysis/relu_zero_fraction"]) == figures["relu_zero_fraction"]
    assert "relu_zero_fraction" in capsys.readouterr().out


def test_analyze_without_plaintext_answers_says_which_setting_to_change(workdir, capsys):
    args = ["analyze", "--config", str(MNIST_TINY_CONFIG), "--out", "analysis", "--data.plaintext_baseline", "false"]
    stderr = refusal(args, capsys)
    assert "data.plaintext_baseline: true" in stderr
    assert "Traceback" not in stderr and not (workdir / "analysis").exists()
