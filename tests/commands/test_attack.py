"""`owsd attack` end to end on 200 real MNIST digits with tiny models, and its answers to bad settings."""

import json
import os
from pathlib import Path

import pytest

from owsd.cli import main
from owsd.commands.attack import slug
from owsd.security.budget import key_budget
from owsd.security.curves import Curve
from tests.conftest import MNIST_TINY_CONFIG, run_owsd

ATTACKS = {
    "clustering (pixels)",
    "clustering (cloud vectors)",
    "label leakage (pixels)",
    "label leakage (cloud vectors)",
}
ATTACKS |= {"embedding inversion", "reconstruction", "key recovery (width 16)", "key recovery (width 8)", "linkability"}


@pytest.fixture(scope="module")
def attack_run(tmp_path_factory) -> Path:
    """One run of the suite (about 20 s), shared by the tests that read its results."""
    workdir = tmp_path_factory.mktemp("attack")
    before = os.getcwd()
    os.chdir(workdir)
    try:
        main(["attack", "--config", str(MNIST_TINY_CONFIG), "--out", "results"])
    finally:
        os.chdir(before)
    return workdir


def test_every_attack_is_a_curve_with_scrambled_unscrambled_and_chance_values(attack_run):
    entries = json.loads((attack_run / "results" / "attacks.json").read_text())["attacks"]
    assert {entry["attack"] for entry in entries} == ATTACKS
    for entry in entries:
        assert entry["threat_model"] in ("T1", "T2", "T3")
        n = len(entry["resource_values"])
        for series in ("scrambled", "unscrambled", "chance"):
            assert len(entry[series]) == n and all(isinstance(v, float) for v in entry[series]), (entry, series)
        png = attack_run / "results" / f"{slug(entry['attack'])}-{slug(entry['metric'])}.png"
        assert png.read_bytes().startswith(b"\x89PNG"), png
    pairs = {e["attack"]: e for e in entries if e["metric"] == "identification"}["embedding inversion"]
    assert pairs["resource_values"] == [30, 80] and pairs["resource"] == "known pairs"
    clusters = next(e for e in entries if e["attack"] == "clustering (pixels)" and e["metric"] == "nmi")
    assert set(clusters["defences"]) == {"embedding_noise=1.0", "rotate_every=100"}


def test_key_budget_is_derived_from_the_curves(attack_run):
    results = attack_run / "results"
    entries = json.loads((results / "attacks.json").read_text())["attacks"]
    curves = [Curve(**{k: v for k, v in entry.items() if k != "reaches_90pct_of_unscrambled_at"}) for entry in entries]
    budget = json.loads((results / "key_budget.json").read_text())
    assert budget["configured"] == json.loads(json.dumps(key_budget(curves, budget["margin"])))
    assert set(budget["defences"]) == {"embedding_noise=1.0", "rotate_every=100"}
    assert set(budget["linkability"]) == {"same", "crop", "jpeg", "resize"}


def test_each_defence_reports_its_iin_accuracy_beside_the_iin_that_sends_nothing(attack_run):
    rows = json.loads((attack_run / "results" / "defences.json").read_text())["defences"]
    assert [row["defence"] for row in rows] == ["none", "embedding_noise=1.0", "rotate_every=100"]
    for row in rows:
        assert 0 <= row["iin_top1"] <= row["iin_top5"] <= 1 and 0 <= row["embedding_iin_top1"] <= 1
        assert 0 <= row["cloud_iin_top1"] <= 1
    assert 0 <= rows[-1]["key_separation_nmi"] <= 1  # rotation: can submissions be sorted by key?


def test_results_hold_no_key_material(attack_run):
    secret = (attack_run / ".owsd" / "keys" / "mnist_tiny.key").read_bytes()
    for path in (attack_run / "results").iterdir():
        content = path.read_bytes()
        assert secret not in content and secret.hex().encode() not in content, path


def bad_cases(existing: Path) -> dict[str, tuple[list[str], str]]:
    return {
        "unknown attack": (["--attack.attacks", "[clustering, brute_force]"], "attack.attacks"),
        "margin": (["--attack.margin", "1.5"], "attack.margin=1.5 must lie in (0, 1)"),
        "too many pairs": (["--attack.resources.pairs", "[30, 500]"], "attack.resources.pairs asks for 500"),
        "unknown defence": (["--attack.defences", "[{embedding_nois: 1.0}]"], "embedding_nois"),
        "bad defence": (["--attack.defences", "[{embedding_dropout: 1.0}]"], "embedding_dropout=1.0 must lie in"),
        "no images": (["--attack.images_per_label", "0"], "attack.images_per_label=0 must be ≥ 1"),
        "results present": (["--out", str(existing)], "already holds files"),
    }


@pytest.mark.parametrize(
    "case", ["unknown attack", "margin", "too many pairs", "unknown defence", "bad defence", "no images"]
)
def test_bad_settings_give_one_clear_error_and_write_nothing(attack_run, tmp_path, case):
    overrides, message = bad_cases(attack_run / "results")[case]
    out = tmp_path / "out"
    result = run_owsd(["attack", "--config", str(MNIST_TINY_CONFIG), "--out", str(out), *overrides], cwd=attack_run)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_an_output_folder_with_results_is_never_overwritten(attack_run):
    results = attack_run / "results"
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    overrides, message = bad_cases(results)["results present"]
    result = run_owsd(["attack", "--config", str(MNIST_TINY_CONFIG), *overrides], cwd=attack_run)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before
