"""`owsd attack` end to end on 200 real MNIST digits with tiny models, and its answers to bad settings."""

import json
import os
from pathlib import Path

import pytest

from owsd.cli import main
from owsd.commands.attack import slug
from owsd.components.ledger import DEFAULT_LEDGER, KeyLedger
from owsd.components.timm_models import ModelSpec
from owsd.security.assessment_keys import AssessmentKeys
from owsd.security.budget import key_budget
from owsd.security.curves import Curve
from tests.conftest import MNIST_TINY_CONFIG, one_rank_output, refusal, run_torchrun
from tests.key_scan import assert_no_key_material, key_material

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


def test_figures_are_the_mean_and_std_over_the_assessment_keys(attack_run):
    saved = json.loads((attack_run / "results" / "attacks.json").read_text())
    assert saved["keys"] == 2 and len(saved["per_key"]) == 2
    for index, entry in enumerate(saved["attacks"]):
        under_each = [Curve.from_dict(curves[index]) for curves in saved["per_key"]]
        for point, (first, second) in enumerate(zip(*(curve.scrambled for curve in under_each))):
            assert entry["scrambled"][point] == pytest.approx((first + second) / 2)
            assert entry["std"]["scrambled"][point] == pytest.approx(abs(first - second) / 2**0.5)
    summary = (attack_run / "results" / "summary.md").read_text()
    assert "mean (sample std) over 2 fresh keys" in summary and "NeuraCrypt" in summary


def test_key_budget_is_the_budget_of_the_key_that_leaked_soonest(attack_run):
    results = attack_run / "results"
    per_key = json.loads((results / "attacks.json").read_text())["per_key"]
    budget = json.loads((results / "key_budget.json").read_text())
    margin = budget["margin"]
    for index, curves in enumerate(per_key):
        own = key_budget([Curve.from_dict(entry) for entry in curves], margin)
        assert budget["per_key"][index]["configured"] == json.loads(json.dumps(own))
        for threat, verdict in own.items():
            assert budget["configured"][threat]["budget_per_key"][index] == verdict["budget"]
            assert budget["configured"][threat]["budget"] <= verdict["budget"]
    assert set(budget["defences"]) == {"embedding_noise=1.0", "rotate_every=100"}
    assert set(budget["linkability"]) == {"same", "crop", "jpeg", "resize"}


def test_the_users_key_is_never_used_and_the_assessment_keys_are_recorded_as_such(attack_run):
    assert not (attack_run / ".owsd" / "keys" / "mnist_tiny.key").exists(), "the config's key file was created"
    keys = KeyLedger(attack_run / DEFAULT_LEDGER, "test").keys()
    assert len(keys) == 2 and all(key.assessment == "attack" and key.exposed > 0 for key in keys)
    assert {key.fingerprint for key in keys} == {AssessmentKeys(seed=7)._key(i).fingerprint for i in range(2)}
    assert not list(attack_run.rglob(".assessment")), "the keys and their caches are deleted at the end"


def test_each_defence_reports_its_iin_accuracy_beside_the_iin_that_sends_nothing(attack_run):
    rows = json.loads((attack_run / "results" / "defences.json").read_text())["defences"]
    assert [row["defence"] for row in rows] == ["none", "embedding_noise=1.0", "rotate_every=100"]
    for row in rows:
        assert 0 <= row["iin_top1"] <= row["iin_top5"] <= 1 and 0 <= row["embedding_iin_top1"] <= 1
        assert 0 <= row["cloud_iin_top1"] <= 1
    assert 0 <= rows[-1]["key_separation_nmi"] <= 1  # rotation: can submissions be sorted by key?


def test_results_hold_no_key_subkey_or_generator_weights(attack_run):
    embedding_dim = ModelSpec("test_efficientnet", "random").embedding_dim
    forms = [form for i in range(2) for form in key_material(AssessmentKeys(seed=7)._key(i), embedding_dim, 32, 16)]
    assert_no_key_material(forms, list((attack_run / "results").iterdir()))


def test_a_cloud_outside_the_process_is_refused_unless_the_user_accepts_it(workdir, capsys):
    remote = ["--data.cloud", "owsd.serving.client.RemoteCloud", "--data.cloud.init_args.url", "http://127.0.0.1:9"]
    remote += ["--data.cloud.init_args.model", "cifar", "--data.plaintext_baseline", "false"]
    args = ["attack", "--config", str(MNIST_TINY_CONFIG), "--out", str(workdir / "out"), *remote]
    refused = refusal([*args, "--attack.keys.seed", "null"], capsys)
    assert "--attack.keys.remote_cloud true" in refused and "would send" in refused and "Traceback" not in refused
    public = refusal([*args, "--attack.keys.remote_cloud", "true"], capsys)  # the fixture's seed: public keys
    assert "attack.keys.seed" in public and "must never leave" in public
    assert not (workdir / "out").exists() and not (workdir / ".owsd").exists()


def bad_cases(existing: Path) -> dict[str, tuple[list[str], str]]:
    return {
        "unknown attack": (["--attack.attacks", "[clustering, brute_force]"], "attack.attacks"),
        "margin": (["--attack.margin", "1.5"], "attack.margin=1.5 must be < 1"),
        "too many pairs": (["--attack.resources.pairs", "[30, 500]"], "attack.resources.pairs asks for 500"),
        "unknown defence": (["--attack.defences", "[{embedding_nois: 1.0}]"], "embedding_nois"),
        "bad defence": (["--attack.defences", "[{embedding_dropout: 1.0}]"], "embedding_dropout=1.0 must be < 1"),
        "no images": (["--attack.images_per_label", "0"], "attack.images_per_label=0 must be ≥ 1"),
        "results present": (["--out", str(existing)], "already holds files"),
    }


@pytest.mark.parametrize(
    "case", ["unknown attack", "margin", "too many pairs", "unknown defence", "bad defence", "no images"]
)
def test_bad_settings_give_one_clear_error_and_write_nothing(attack_run, tmp_path, monkeypatch, capsys, case):
    overrides, message = bad_cases(attack_run / "results")[case]
    out = tmp_path / "out"
    monkeypatch.chdir(attack_run)
    stderr = refusal(["attack", "--config", str(MNIST_TINY_CONFIG), "--out", str(out), *overrides], capsys)
    assert message in stderr and "Traceback" not in stderr and stderr.count("error:") == 1, stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_an_output_folder_with_results_is_never_overwritten(attack_run, monkeypatch, capsys):
    results = attack_run / "results"
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    overrides, message = bad_cases(results)["results present"]
    monkeypatch.chdir(attack_run)
    stderr = refusal(["attack", "--config", str(MNIST_TINY_CONFIG), *overrides], capsys)
    assert message in stderr and "Traceback" not in stderr
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before


def test_attack_on_two_torchrun_processes_writes_and_prints_what_one_process_does(tmp_path, monkeypatch):
    """Before: both ranks of a launch ran the suite into one output folder."""
    # One attack under one key: what is compared is where the ranks write and print, not the figures.
    args = ["attack", "--config", str(MNIST_TINY_CONFIG), "--attack.attacks", "[clustering]", "--attack.defences", "[]",
            "--attack.keys.count", "1"]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    one = one_rank_output([*args, "--out", "one"])
    two = run_torchrun([*args, "--out", "two"], cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout == one
    written = sorted((tmp_path / "two").iterdir())
    assert [path.name for path in written] == sorted(path.name for path in (tmp_path / "one").iterdir())
    for result in written:
        if result.name not in ("config.yaml", "provenance.json"):  # they record the launch (and its wall time)
            assert result.read_bytes() == (tmp_path / "one" / result.name).read_bytes(), result.name
