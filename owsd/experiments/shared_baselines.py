"""Local baselines measured once, shared by runs that differ only in their cloud.

What sends nothing (the IIN on the embedding alone, the linear probe, the encoder's head) depends on the images,
the encoders, the split and the IIN recipe, never on the cloud. The regime search asks the same question of three
clouds per encoder; measuring those baselines once per encoder saves a third of its IIN fits. A run that measures
only OWSD (`experiment.inputs: [embedding+cloud]`, `experiment.linear_probe: false`) borrows them from a run given
to the same report whose config is its own but for the cloud and what it measures, repetition by repetition, on
the same split: checked by each record's `split_sha256`, so a baseline is never paired with other images.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from owsd.errors import DataError
from owsd.experiments.records import RunFolder, repetition_of
from owsd.training import LOCAL_METHODS

# What two runs may differ in and still share their local baselines: the cloud, and which methods each measures.
CLOUD_AND_MEASURED = {
    "data": ("cloud", "plaintext_baseline"),
    "experiment": ("inputs", "linear_probe", "encoder_head", "row", "regime"),
}
RUN_ONLY = ("out",)  # where the run wrote
CLOUD_METRIC_PREFIX = "cloud_class_"  # agreement with the lender's cloud: not the borrower's
BORROWED = "measured_in"  # a record's borrowed methods → the folder of the run that measured them


def baseline_setting(run: RunFolder) -> dict[str, Any]:
    """The run's config without the cloud, what it measures and where it wrote, and the data it read."""
    config = copy.deepcopy(run.config)
    for name in RUN_ONLY:
        config.pop(name, None)
    for section, names in CLOUD_AND_MEASURED.items():
        for name in names:
            config.get(section, {}).pop(name, None)
    return {"config": config, "source": run.run.get("pipeline", {}).get("source")}


def share_local_baselines(runs: list[RunFolder]) -> list[RunFolder]:
    """`runs`, with each repetition that lacks a local method given the one its lender measured (without the
    lender's cloud-agreement metrics; the record's `measured_in` names the lender per method); the run notes its
    lenders in `baselines_from`.

    A run that measures no local method and has no lender is refused: the report would silently lose its rows."""
    settings = [baseline_setting(run) for run in runs]
    shared = []
    for index, run in enumerate(runs):
        if _measures_local(run) or not run.config:
            shared.append(run)
            continue
        lenders = [
            other for j, other in enumerate(runs)
            if settings[j] == settings[index] and _measures_local(other)
        ]  # fmt: skip
        if not lenders:
            raise DataError(
                f"{run.folder} measures no baseline that sends nothing, and no other run given shares its config but "
                "for the cloud: give the run that measured its encoder's baselines too, or run it with "
                "experiment.inputs holding `embedding`"
            )
        records = [_borrow(run, record, lenders) for record in run.records]
        used = sorted({folder for record in records for folder in record.get(BORROWED, {}).values()})
        shared.append(replace(run, records=records, run={**run.run, "baselines_from": used}))
    return shared


def _measures_local(run: RunFolder) -> bool:
    return any(m in record.get("methods", {}) for record in run.records for m in LOCAL_METHODS)


def _borrow(run: RunFolder, record: dict[str, Any], lenders: list[RunFolder]) -> dict[str, Any]:
    """`record` with the local methods of the same repetition in the first lender that measured it."""
    if record["status"] != "ok":
        return record
    for lender in lenders:
        same = [r for r in lender.records if repetition_of(r) == repetition_of(record) and r["status"] == "ok"]
        if not same:
            continue
        theirs = same[0]
        if "split_sha256" not in record or "split_sha256" not in theirs:
            raise DataError(
                f"{run.folder} or {lender.folder} records no split_sha256 (written before it existed): "
                "run it again with this version to pair their baselines"
            )
        if theirs["split_sha256"] != record["split_sha256"]:
            raise DataError(
                f"{run.folder} and {lender.folder} differ in the images of seed {record['seed']} "
                f"({record['train_per_label']} per label) although their configs agree: the data changed between "
                "them; run both again"
            )
        borrowed = [m for m in LOCAL_METHODS if m in theirs["methods"] and m not in record["methods"]]
        methods = {
            **record["methods"],
            **{m: {k: v for k, v in theirs["methods"][m].items() if not k.startswith(CLOUD_METRIC_PREFIX)}
               for m in borrowed},
        }  # fmt: skip
        return {**record, "methods": methods, BORROWED: {m: lender.folder.name for m in borrowed}}
    return record
