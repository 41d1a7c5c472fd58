"""What `owsd run` writes and `owsd report` reads: a run folder's metadata and per-repetition records,
and their mean (std) over seeds."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from owsd.errors import DataError
from owsd.files import append_json_lines, read_json_lines
from owsd.stats import Stat

RUN_FILE, RECORDS_FILE, CONFIG_FILE = "run.json", "runs.jsonl", "config.yaml"


@dataclass(frozen=True)
class Setting:
    """What the repetitions of one table cell share: everything but the seed."""

    recipe: str
    encoders: int
    train_per_label: int | None


@dataclass(frozen=True)
class Cell:
    """The repetitions of one setting: per method and metric the statistic, and the seeds that failed."""

    setting: Setting
    stats: dict[str, dict[str, Stat]]
    seeds: list[int]
    failed: dict[int, str]


@dataclass(frozen=True)
class RunFolder:
    folder: Path
    run: dict[str, Any]
    records: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)  # the whole config the run was given, as it saved it

    @property
    def protocol(self) -> str:
        return self.run["protocol"]

    @property
    def row(self) -> str:
        return self.run["row"]

    def cells(self) -> list[Cell]:
        """One cell per setting, in the order the runner ran them."""
        by_setting: dict[Setting, list[dict[str, Any]]] = {}
        for record in self.records:
            setting = Setting(record["recipe"], record["encoders"], record["train_per_label"])
            by_setting.setdefault(setting, []).append(record)
        return [_cell(setting, records) for setting, records in by_setting.items()]


def _cell(setting: Setting, records: list[dict[str, Any]]) -> Cell:
    values: dict[str, dict[str, list[float]]] = {}
    for record in records:
        for method, metrics in record.get("methods", {}).items():
            for metric, value in metrics.items():
                values.setdefault(method, {}).setdefault(metric, []).append(value)
    stats = {method: {metric: Stat.of(v) for metric, v in metrics.items()} for method, metrics in values.items()}
    failed = {record["seed"]: record["error"] for record in records if record["status"] != "ok"}
    return Cell(setting, stats, [record["seed"] for record in records], failed)


def repetition_of(record: dict[str, Any]) -> tuple[Any, ...]:
    """Which repetition a record is of: all but its results."""
    return record["seed"], record["recipe"], record["encoders"], record["train_per_label"]


def write_run(folder: Path, run: dict[str, Any], config_yaml: str) -> None:
    """The run's metadata beside the records `append_record` wrote."""
    (folder / RUN_FILE).write_text(json.dumps(run, indent=2, default=str))  # paths as text
    (folder / CONFIG_FILE).write_text(config_yaml)


def append_record(folder: Path, record: dict[str, Any]) -> None:
    """One repetition's record, on disk before the next repetition starts."""
    append_json_lines(folder / RECORDS_FILE, [record])


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The records an interrupted run wrote."""
    return read_json_lines(folder / RECORDS_FILE)


def read_run(folder: Path) -> RunFolder:
    """A run folder written by `owsd run`; `DataError` naming the folder and file when it is not one."""
    if not folder.is_dir():
        raise DataError(
            f"{folder} is not a run folder of `owsd run`: it is {'a file' if folder.exists() else 'missing'}"
        )
    try:
        run = json.loads((folder / RUN_FILE).read_text())
        lines = (folder / RECORDS_FILE).read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        config = yaml.safe_load((folder / CONFIG_FILE).read_text())
    except FileNotFoundError as error:
        raise DataError(f"{folder} is not a run folder of `owsd run`: {Path(error.filename).name} is missing") from None
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise DataError(f"{folder}: a file of the run is corrupt ({error})") from None
    if not isinstance(run, dict) or "protocol" not in run or not records or not isinstance(config, dict):
        raise DataError(f"{folder}: {RUN_FILE}, {RECORDS_FILE} or {CONFIG_FILE} does not hold an `owsd run` result")
    return RunFolder(folder, run, records, config)


def slug(text: str) -> str:
    """A row's name as part of a figure's file name: `MNIST → Lite2, 3/label` → `mnist-lite2-3-label`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
