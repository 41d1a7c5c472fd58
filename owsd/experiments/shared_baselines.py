"""Local baselines measured once, shared by runs that differ only in their cloud.

What sends nothing (the IIN on the embedding alone, the linear probe, the encoder's head) depends on the images,
the encoders, the split and the IIN recipe, never on the cloud. The regime search asks the same question of three
clouds per encoder; measuring those baselines once per encoder saves a third of its IIN fits. A run that measures
only OWSD (`experiment.inputs: [embedding+cloud]`, `experiment.linear_probe: false`) borrows them from a run given
to the same report whose config is its own but for the cloud and what it measures, and whose data and encoder
weights are the same, repetition by repetition, on the same split: checked by each record's `split_sha256`, so a
baseline is never paired with other images.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from owsd.errors import DataError
from owsd.experiments.records import RunFolder, repetition_of
from owsd.training import LOCAL_METHODS

# The config keys two runs may differ in and still share their local baselines: the cloud, what each measures,
# how the report names it.
MAY_DIFFER = {
    "data": ("cloud", "plaintext_baseline"),
    "experiment": ("inputs", "linear_probe", "encoder_head", "row", "regime"),
}
RUN_ONLY = ("out",)  # where the run wrote
CLOUD_METRIC_PREFIX = "cloud_class_"  # agreement with the lender's cloud: not the borrower's
MEASURED_IN = "measured_in"  # in a record: each borrowed method → the folder of the run that measured it


def baseline_setting(run: RunFolder) -> dict[str, Any]:
    """What the run's local baselines depend on: its config but for `MAY_DIFFER` and `RUN_ONLY`, its data and its
    encoders' weights."""
    config = copy.deepcopy(run.config)
    for name in RUN_ONLY:
        config.pop(name, None)
    for section, names in MAY_DIFFER.items():
        for name in names:
            config.get(section, {}).pop(name, None)
    pipeline = run.run.get("pipeline", {})
    return {"config": config, "source": pipeline.get("source"), "encoders": pipeline.get("encoder_identities")}


def share_local_baselines(runs: list[RunFolder]) -> list[RunFolder]:
    """`runs`, each repetition given the local methods it lacks from the first lender (another run of the same
    `baseline_setting`) whose same repetition measured them, without the lender's cloud-agreement metrics; the
    record's `measured_in` names the lender per method, the run's `baselines_from` all of them.

    A repetition left with no local method at all is refused: the report would silently lose its rows. Runs
    without a saved config (built by hand, not read from `owsd run`'s folder) are left as they are."""
    settings = [baseline_setting(run) for run in runs]
    shared = []
    for index, run in enumerate(runs):
        if not run.config:
            shared.append(run)
            continue
        lenders = [other for j, other in enumerate(runs) if j != index and settings[j] == settings[index]]
        records = [_borrow(run, record, lenders) for record in run.records]
        used = sorted({lender for record in records for lender in record.get(MEASURED_IN, {}).values()})
        shared.append(replace(run, records=records, run={**run.run, "baselines_from": used}) if used else run)
    return shared


def _borrow(run: RunFolder, record: dict[str, Any], lenders: list[RunFolder]) -> dict[str, Any]:
    """`record` with the local methods it lacks, each from the first lender whose same repetition measured it."""
    missing = [method for method in LOCAL_METHODS if method not in record.get("methods", {})]
    if record["status"] != "ok" or not missing:
        return record
    methods, measured_in = dict(record["methods"]), {}
    for lender in lenders:
        theirs = next((r for r in lender.records if repetition_of(r) == repetition_of(record)), None)
        if theirs is None or theirs["status"] != "ok" or not set(missing) & set(theirs["methods"]):
            continue
        _check_same_images(run, record, lender, theirs)
        for method in [m for m in missing if m in theirs["methods"] and m not in methods]:
            metrics = theirs["methods"][method]
            methods[method] = {k: v for k, v in metrics.items() if not k.startswith(CLOUD_METRIC_PREFIX)}
            measured_in[method] = lender.folder.name
    if not set(methods) & set(LOCAL_METHODS):
        if not lenders:
            raise DataError(
                f"{run.folder} measures no baseline that sends nothing, and no other run given shares its config but "
                "for the cloud: give the run that measured its encoder's baselines too, or run it with "
                "experiment.inputs holding `embedding`"
            )
        where = f"seed {record['seed']}, {record['train_per_label']} per label, recipe {record['recipe']}"
        raise DataError(
            f"{run.folder} ({where}) measures no baseline that sends nothing and its lenders "
            f"({', '.join(str(lender.folder) for lender in lenders)}) have none for it (failed or not run): "
            "run the lender again"
        )
    return {**record, "methods": methods, MEASURED_IN: measured_in} if measured_in else record


def _check_same_images(run: RunFolder, record: dict[str, Any], lender: RunFolder, theirs: dict[str, Any]) -> None:
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
