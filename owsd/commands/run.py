"""`owsd run --config CFG --out DIR`: the config's `experiment:` over its seeds, all from one cache.

Writes `DIR/runs.jsonl` (one record per repetition: seed, recipe, ensemble and training size, image counts,
each method's test top-1/top-5, epochs and seconds; a crashed repetition as failed, with its error),
`DIR/run.json` (protocol, row, pipeline, precompute and total seconds) and `DIR/config.yaml`, then prints
mean (std) per method. Exits 1 when a repetition failed (its record says why). Each record is appended to
`DIR.partial/runs.jsonl` as its repetition ends; an interrupted run, started again, skips those.
On several processes (`trainer.devices`, `torchrun`, SLURM) only the precompute is shared; the repetitions,
records and output folder are rank 0's alone (`owsd.distributed`).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from owsd.commands.output import OutputFolder
from owsd.commands.settings import experiment_parser, parse, scratch_trainer_settings
from owsd.datamodule import OWSDDataModule
from owsd.distributed import end_distributed, precompute_trainer
from owsd.errors import ConfigError
from owsd.experiments.paper import PAPER
from owsd.experiments.records import append_record, read_records, read_run, write_run
from owsd.experiments.report import run_summary
from owsd.experiments.runner import SeedRunner
from owsd.experiments.settings import ExperimentSettings

log = logging.getLogger("owsd")


def main(argv: list[str]) -> None:
    parser = experiment_parser("owsd run", __doc__.splitlines()[0])
    config, objects, config_yaml = parse(parser, argv)
    settings: ExperimentSettings = objects.experiment
    if settings.paper_row is not None and not any(k.startswith(settings.paper_row) for k in PAPER):
        raise ConfigError(f"experiment.paper_row={settings.paper_row!r} is none of the paper's rows {sorted(PAPER)}")
    objects.data.split  # noqa: B018  a split the config cannot take (images the cloud saw) fails before any write
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    precompute = precompute_trainer(objects.trainer, objects.data.pipeline.precompute_timeout)
    with scratch_trainer_settings(objects, precompute) as single:
        runner = SeedRunner(objects.data, config.model.as_dict(), single, settings, config.iin_threads)
        if precompute.global_rank != 0:  # another process: it takes its share of precompute's batches, then ends
            runner.precompute(precompute)
            end_distributed(precompute)
        output = OutputFolder(
            config.out, config_yaml, progress=lambda: f"{len(records)} runs recorded", pipeline=objects.data.pipeline
        )
        with output as folder:
            records += read_records(folder)
            precompute_seconds = runner.precompute(precompute)  # on every process
            end_distributed(precompute)  # from here on, rank 0 alone
            for record in runner.run(skip=records):
                append_record(folder, record)
                records.append(record)
            run = {
                "protocol": settings.protocol,
                "row": settings.row or Path(str(config.config[0])).stem,
                "paper_row": settings.paper_row,
                "same_data_as_paper": settings.same_data_as_paper,
                "regime": settings.regime,
                "pipeline": run_setting(objects.data),
                "precompute_seconds": round(precompute_seconds, 1),
                "total_seconds": round(time.perf_counter() - started, 1),
            }
            write_run(folder, run, config_yaml)
    print(run_summary(read_run(config.out)))
    log.info("wrote %s", config.out)
    failed = sum(record["status"] != "ok" for record in records)
    if failed:
        print(f"owsd: error: {failed} of {len(records)} runs failed; {config.out}/runs.jsonl says why", file=sys.stderr)
        sys.exit(1)


def run_setting(data: OWSDDataModule) -> dict[str, Any]:
    """What makes two run folders comparable: data, models, scrambler and split, but not the seeds."""
    split = asdict(data.split_settings)
    for varied in ("seed", "train_per_label"):
        split.pop(varied)
    split["labels"].pop("seed")
    pipeline = data.pipeline
    return {
        "source": pipeline.source.identity,
        "encoders": [spec.name for spec in pipeline.encoders],
        "encoder_identities": [spec.identity for spec in pipeline.encoders],  # with their weights' hash
        "cloud": pipeline.cloud.cloud_id,
        "scrambler": {"size": pipeline.scrambler.size, "channels": pipeline.scrambler.channels},
        "defences": pipeline.scrambler.defences.active,
        "split": split,
    }
