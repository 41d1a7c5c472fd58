"""Every sweep YAML in sweeps/ is valid for W&B's sweep engine, and two of its trials run as `wandb agent`
would run them, offline, on the tiny MNIST config; the metric is read back from the offline run."""

import json
import os
from dataclasses import asdict

import pytest

from owsd.cli import main
from owsd.errors import ConfigError
from owsd.experiments import sweep as sweep_module
from owsd.experiments.sweep import Trial, engine, load_sweep, run_sweep, trial_command
from tests.conftest import MNIST_TINY_CONFIG, REPO

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_trial_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Appended to each trial: the tiny config (wandb logger restored) with the demo's 63 training digits per label
    (the most a sweep asks for), one cache and key for every trial."""
    shared = tmp_path_factory.mktemp("tiny")
    return [
        f"--config={MNIST_TINY_CONFIG}",
        f"--config={REPO / 'lightning_configs' / 'loggers' / 'wandb.yaml'}",
        f"--data.cache_dir={shared / 'cache'}",
        f"--data.scrambler.key_file={shared / 'keys' / 'tiny.key'}",
        f"--data.scrambler.ledger_file={shared / 'ledger.sqlite'}",  # never the repository's own ledger
        "--data.split.images_per_label=100",
        "--data.split.val_fraction=0.1",
        "--data.plaintext_baseline=false",  # the plain digits' cloud answers: a fit's table row the sweep never reads
    ]


def test_there_are_sweeps_for_iin_size_and_encoder_ensembles():
    assert {path.stem for path in SWEEPS} >= {"iin_size", "encoder_ensembles"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_each_sweep_is_valid_and_its_commands_are_owsd_fit_with_flat_parameters(path):
    config = load_sweep(path)
    assert all("parameters" not in spec for spec in config["parameters"].values())
    proposal = engine().next_run(config, [])
    parameters = {name: spec["value"] for name, spec in proposal.config.items()}
    command = trial_command(config, parameters, [])
    assert command[1:3] == ["owsd", "fit"] and "--compare=[]" in command
    assert command[-len(parameters) :] == [f"--{name}={value}" for name, value in parameters.items()]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_two_trials_run_offline_as_the_agent_would_and_report_their_metric(
    path, tiny_trial_args, tmp_path, monkeypatch
):
    monkeypatch.chdir(REPO)  # the sweeps name configs relative to the repository, as `wandb agent` runs them
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    config = load_sweep(path)
    if "data.split.train_per_label" not in config["parameters"]:  # 20 digits per label serve it: 5x fewer sent
        tiny_trial_args = [*tiny_trial_args, "--data.split.images_per_label=20"]
    trials = run_sweep(config, 2, tiny_trial_args, tmp_path / "sweep")
    assert [t.status for t in trials] == ["finished", "finished"], [t.error for t in trials]
    assert trials[0].parameters != trials[1].parameters
    for trial in trials:
        assert 0 <= trial.metric <= 1 and trial.seconds > 0
        assert (tmp_path / "sweep" / trial.run_dir / "files" / "media").is_dir()


def test_failed_trials_are_recorded_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "broken.yaml"
    sweep.write_text(
        "method: grid\nmetric: {name: m, goal: maximize}\nparameters: {x: {values: [1, 2]}}\n"
        "command:\n  - ${env}\n  - python\n  - -c\n  - \"import sys; sys.exit('error: no such model')\"\n  - ${args}\n"
    )
    with pytest.raises(SystemExit) as exit_info:  # a sweep that measured nothing is a failed command
        main(["sweep", str(sweep), "--trials", "5", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    results = json.loads((tmp_path / "out" / "trials.json").read_text())
    assert [t["status"] for t in results["trials"]] == ["failed", "failed"]  # the 2-point grid ends the sweep
    assert all("error: no such model" in t["error"] for t in results["trials"])
    assert "failed: exit 1: error: no such model" in (tmp_path / "out" / "trials.md").read_text()
    assert "owsd: error: every trial failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, problem",
    [
        ("method: grid\nparameters: {model.lr: {values: [1]}}\n", "metric"),
        ("method: grd\nmetric: {name: m}\nparameters: {model.lr: {values: [1]}}\n", "grd"),
        ("method: grid\nmetric: {name: m}\nparameters: {model: {parameters: {lr: {values: [1]}}}}\n", "dotted keys"),
        ("method: grid\nmetric: {name: m}\nparameters: {model.lr: {min: 0.1, max: 1.0}}\n", "model.lr"),
        ("method: grid\nmetric: {name: m}\nparameters: {x: {values: [1]}}\ncommand:\n  - ${foo}\n", "${foo}"),
        ("method: [grid\n", "cannot read"),
    ],
)
def test_a_bad_sweep_is_one_error_naming_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_sweep(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_the_command_line_reports_a_bad_sweep_in_one_line(tmp_path, capsys):
    from tests.conftest import refusal

    (tmp_path / "bad.yaml").write_text("method: grid\n")
    stderr = refusal(["sweep", str(tmp_path / "bad.yaml"), "--trials", "2", "--out", str(tmp_path / "out")], capsys)
    assert stderr.startswith("owsd: error: ") and "bad.yaml" in stderr
    assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    assert os.listdir(tmp_path) == ["bad.yaml"]


def test_a_seeded_sweep_proposes_the_same_trials_resumed_or_not(tmp_path, monkeypatch):
    """The engine (bayes here) draws from global generators: seeded per trial, an interrupted sweep continues
    with the trials an uninterrupted one would have run."""

    def fake_trial(config, number, parameters, extra_args, folder):
        folder.mkdir(parents=True)
        metric = 1 / (1 + abs(parameters["model.lr"] - 3e-4) + parameters["model.dropout"])  # any function of them
        trial = Trial(number, parameters, "finished", metric, 0.0, folder.name)
        (folder / "trial.json").write_text(json.dumps(asdict(trial)))
        return trial

    monkeypatch.setattr(sweep_module, "run_trial", fake_trial)
    config = load_sweep(REPO / "sweeps" / "iin_size.yaml")
    straight = [t.parameters for t in run_sweep(config, 4, [], tmp_path / "straight", seed=3)]
    run_sweep(config, 2, [], tmp_path / "resumed", seed=3)  # stopped after two trials
    resumed = [t.parameters for t in run_sweep(config, 4, [], tmp_path / "resumed", seed=3)]
    assert resumed == straight and len({json.dumps(p, sort_keys=True) for p in straight}) == 4
    assert [t.parameters for t in run_sweep(config, 4, [], tmp_path / "other", seed=4)] != straight
