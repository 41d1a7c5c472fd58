"""W&B sweeps without W&B's server: the loop behind `owsd sweep`.

`wandb sweep` and `wandb agent` need an account. W&B's own open-source sweep engine (the `sweeps` package)
validates a sweep YAML and proposes grid, random and bayes trials locally; this loop runs each trial as the
agent would (the YAML's `command` with its macros filled in, as a subprocess) with `WANDB_MODE=offline`,
reads the metric back from the offline run and feeds it to the engine (bayes needs it). Offline, wandb 0.31
writes no `wandb-summary.json`: the summary lives only in the run's `run-<id>.wandb` log (LevelDB-log
records of wandb's protobufs), which `offline_summary` reads.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import struct
import subprocess
import time
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy
import yaml

from owsd.errors import ConfigError
from owsd.files import atomic_write, read_record

log = logging.getLogger(__name__)

AGENT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]  # `wandb agent`'s default
_MACRO = re.compile(r"^\$\{(\w+)\}$")
_MACROS = ("env", "interpreter", "program", "args", "args_no_hyphens")
TRIAL_FILE = "trial.json"  # in a trial's folder once it has finished


@dataclass
class Trial:
    """One proposed trial and how it went; `status` is `finished` or `failed` (then `error` says why)."""

    number: int
    parameters: dict[str, Any]
    status: str
    metric: float | None
    seconds: float
    run_dir: str | None = None
    error: str | None = None


def engine() -> Any:
    """The `sweeps` package, imported without its warning about pydantic 2's renamed settings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Valid config keys have changed", category=UserWarning)
        import sweeps
    return sweeps


def load_sweep(path: Path) -> dict[str, Any]:
    """The sweep YAML, checked by the engine itself; any problem is one `ConfigError` naming the file."""
    sweeps = engine()
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the sweep ({' '.join(str(error).split())})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a sweep is a YAML mapping with method, metric, parameters and command")
    for name, spec in (config.get("parameters") or {}).items():
        if isinstance(spec, dict) and "parameters" in spec:
            raise ConfigError(f"{path}: {name!r} nests `parameters:`, which the engine drops; use dotted keys")
    metric = config.get("metric")
    if not isinstance(metric, dict) or "name" not in metric:
        raise ConfigError(f"{path}: give `metric: {{name: ..., goal: maximize|minimize}}`, the result of each trial")
    try:
        problems = sweeps.schema_violations_from_proposed_config(config)
        if problems:
            raise ValueError("; ".join(problems))
        config = sweeps.SweepConfig(config)
        sweeps.next_run(config, [])  # method-specific checks (e.g. grid needs discrete values)
    except Exception as error:  # the engine raises ValueError, jsonschema's and pydantic's errors
        raise ConfigError(f"{path}: {' '.join(str(error).split())}") from None
    unknown = [c for c in command_of(config) if _MACRO.match(str(c)) and _MACRO.match(str(c))[1] not in _MACROS]
    if unknown:
        raise ConfigError(f"{path}: command uses {unknown[0]}; known macros: {', '.join(_MACROS)}")
    if "${program}" in command_of(config) and "program" not in config:
        raise ConfigError(f"{path}: command uses ${{program}} but the sweep names no `program`")
    return config


def command_of(config: dict[str, Any]) -> list[Any]:
    return config.get("command") or AGENT_COMMAND


def trial_command(config: dict[str, Any], parameters: dict[str, Any], extra_args: list[str]) -> list[str]:
    """The command line `wandb agent` would run for these parameters, then `extra_args`."""
    values = {
        "env": ["/usr/bin/env"],
        "interpreter": ["python"],
        "program": [str(config.get("program", ""))],
        "args": [f"--{name}={value}" for name, value in parameters.items()],  # the agent's own formatting
        "args_no_hyphens": [f"{name}={value}" for name, value in parameters.items()],
    }
    line: list[str] = []
    for part in command_of(config):
        macro = _MACRO.match(str(part))
        line += values[macro[1]] if macro else [str(part)]
    return line + list(extra_args)


def offline_summary(run_log: Path) -> dict[str, Any]:
    """The run's final summary (metric name → value), replayed from its `run-<id>.wandb` log."""
    from wandb.proto import wandb_internal_pb2

    data, summary = run_log.read_bytes(), {}
    if not data.startswith(b":W&B"):
        raise ValueError(f"{run_log} is not a wandb run log")
    block, position, pending = 32768, 7, b""  # LevelDB log: 32 KiB blocks of (crc, length, kind) records
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk, position = data[position + 7 : position + 7 + length], position + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind not in (1, 4):
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return summary


def run_trial(
    config: dict[str, Any], number: int, parameters: dict[str, Any], extra_args: list[str], folder: Path
) -> Trial:
    """Run one trial offline in `folder` (its wandb run, checkpoints and output), read its metric back, and
    write it to `folder/trial.json`, which marks the trial finished. A folder without one is started again."""
    shutil.rmtree(folder, ignore_errors=True)  # what an interrupted attempt left
    folder.mkdir(parents=True)
    command = trial_command(config, parameters, [*extra_args, f"--trainer.logger.save_dir={folder}"])
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    with open(folder / "stdout.log", "w") as out, open(folder / "stderr.log", "w") as err:
        code = run_to_the_end(command, environment, out, err)
    seconds, metric_name = time.perf_counter() - start, config["metric"]["name"]
    trial = Trial(number, parameters, "failed", None, round(seconds, 1))
    logs = sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))
    if logs:
        trial.run_dir = str(logs[-1].parent.relative_to(folder.parent))
    if code != 0:
        lines = (folder / "stderr.log").read_text().strip().splitlines()
        reason = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        trial.error = f"exit {code}: {reason.strip() or 'no output'}"
    elif not logs:
        trial.error = "no offline wandb run: the sweep's command must configure a WandbLogger"
    elif not isinstance(value := offline_summary(logs[-1]).get(metric_name), int | float):
        trial.error = f"the run logged no {metric_name}"
    else:
        trial.status, trial.metric = "finished", float(value)
    atomic_write(folder / TRIAL_FILE, lambda temp: temp.write_text(json.dumps(asdict(trial), indent=2)))
    return trial


def run_to_the_end(command: list[str], environment: dict[str, str], out: Any, err: Any) -> int:
    """The trial's exit code; when the sweep itself is stopped, the trial is stopped too (SIGTERM, then
    SIGKILL after 10 s), never left running on its own."""
    with subprocess.Popen(command, env=environment, stdout=out, stderr=err) as trial:
        try:
            return trial.wait()
        except BaseException:
            trial.terminate()
            try:
                trial.wait(10)
            except subprocess.TimeoutExpired:
                trial.kill()
            raise


def finished_trials(folder: Path) -> list[Trial]:
    """The trials an interrupted sweep finished, in order, up to the first it did not."""
    trials = []
    for number in range(1, 10**6):
        finished = read_record(folder / f"trial-{number:03d}" / TRIAL_FILE, "the trial runs again")
        if finished is None:
            return trials
        trials.append(Trial(**finished))
    return trials


def run_sweep(
    config: dict[str, Any],
    trials: int,
    extra_args: list[str],
    folder: Path,
    done: list[Trial] | None = None,
    seed: int = 0,
) -> list[Trial]:
    """Up to `trials` trials proposed by the engine (fewer when a grid is exhausted), each in `folder/trial-NNN`.

    Trials an interrupted sweep finished in `folder` are kept and told to the engine, which proposes the
    next from them; they are appended to `done` (and each new trial as it finishes), so that a caller
    interrupted meanwhile knows what is finished. The engine draws from Python's and numpy's global generators;
    both are seeded from `seed` and the trial's number before each proposal, so a sweep, resumed or not,
    proposes the same trials."""
    sweeps = engine()
    done = [] if done is None else done
    metric, runs = config["metric"]["name"], []
    for trial in finished_trials(folder):
        done.append(trial)
        runs.append(_as_run(sweeps, trial, {name: {"value": v} for name, v in trial.parameters.items()}, metric))
    if done:
        log.info("%d finished trials kept in %s", len(done), folder)
    for number in range(len(done) + 1, trials + 1):
        trial_seed = f"owsd-sweep/{seed}/{number}"
        random.seed(trial_seed)
        numpy.random.seed(zlib.crc32(trial_seed.encode()))
        proposal = sweeps.next_run(config, runs)
        if proposal is None:
            log.info("the grid is exhausted after %d trials", len(done))
            break
        values = {name: spec["value"] for name, spec in proposal.config.items()}
        parameters = json.loads(json.dumps(values, default=lambda v: v.item()))  # numpy scalars → plain numbers
        trial = run_trial(config, number, parameters, extra_args, folder / f"trial-{number:03d}")
        done.append(trial)
        outcome = f"{metric}={trial.metric:.4f}" if trial.metric is not None else f"FAILED ({trial.error})"
        log.info("trial %d/%d %s: %s in %.0f s", number, trials, _brief(parameters), outcome, trial.seconds)
        runs.append(_as_run(sweeps, trial, proposal.config, metric))
    return done


def _as_run(sweeps: Any, trial: Trial, proposed: dict[str, Any], metric: str) -> Any:
    """A finished trial as the engine's record of a run."""
    state = sweeps.RunState.finished if trial.status == "finished" else sweeps.RunState.failed
    summary = {metric: trial.metric} if trial.metric is not None else {}
    return sweeps.SweepRun(name=f"trial-{trial.number}", config=proposed, state=state, summaryMetrics=summary)


def ranked(trials: list[Trial], goal: str) -> list[Trial]:
    """Best first by the metric; failed trials last, in the order they ran."""
    sign = -1 if goal == "maximize" else 1
    return sorted(trials, key=lambda t: (t.metric is None, sign * (t.metric or 0), t.number))


def write_results(trials: list[Trial], config: dict[str, Any], folder: Path) -> None:
    """`trials.json` (everything) and `trials.md` (a table sorted by the metric) in `folder`."""
    metric, goal = config["metric"]["name"], config["metric"].get("goal", "minimize")
    order = ranked(trials, goal)
    payload = {"metric": metric, "goal": goal, "sweep": dict(config), "trials": [asdict(t) for t in order]}
    (folder / "trials.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    names = list(dict.fromkeys(name for t in trials for name in t.parameters))
    lines = [f"| rank | trial | {' | '.join(names)} | {metric} ({goal}) | time | status |"]
    lines.append("|" + " --- |" * (len(names) + 5))
    for rank, t in enumerate(order, 1):
        value = f"{t.metric:.4f}" if t.metric is not None else "—"
        status = t.status if t.error is None else f"{t.status}: {t.error}"
        cells = [_cell(t.parameters.get(name)) for name in names]
        lines.append(f"| {rank} | {t.number} | {' | '.join(cells)} | {value} | {t.seconds:.0f} s | {status} |")
    (folder / "trials.md").write_text("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    """A parameter for the table: encoder lists by name, floats to 4 significant digits."""
    if isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value):
        return " + ".join(v["name"] for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")


def _brief(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{name.rsplit('.', 1)[-1]}={_cell(value)}" for name, value in parameters.items())
