"""What each defence costs the user: the IIN's test accuracy with it, beside the IIN that sends nothing.

Each defended scrambler is a new pipeline (its own cache fingerprint): its images are encoded, scrambled
and sent to the cloud once, then the configured IIN is trained and tested on the configured split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict

from lightning.pytorch import Trainer

from owsd.components.scrambler import Defences
from owsd.datamodule import OWSDDataModule
from owsd.iin_module import IINModule
from owsd.pipeline import Pipeline
from owsd.training import measure

log = logging.getLogger(__name__)


def defence_name(defences: Defences) -> str:
    """A short label, e.g. `embedding_noise=1.0` or `rotate_every=500+embedding_noise=1.0`; `none` when off."""
    return "+".join(f"{name}={value}" for name, value in defences.active.items()) or "none"


def defence_costs(
    data: OWSDDataModule,
    model: IINModule,
    make_trainer: Callable[[], Trainer],
    defences: list[Defences],
    seed: int,
    threads: int,
) -> list[dict]:
    """Test top-1/top-5 of the OWSD IIN (`embedding+cloud`) per defence, of the `cloud` IIN (what the cloud's
    answers alone still tell the user), and of the `embedding` IIN (sending nothing at all)."""

    def measured(pipeline: Pipeline, inputs: list[str]) -> dict[str, dict[str, float]]:
        defended = OWSDDataModule.of(pipeline, data.split_settings, data.batch_size)
        defended.prepare_cache(make_trainer())
        return measure(defended, model, make_trainer, inputs, seed, linear_probe=False, threads=threads)

    sending_nothing = measured(data.pipeline, ["embedding"])["embedding"]
    rows = []
    for defence in [data.pipeline.scrambler.defences, *defences]:
        # A defended pipeline needs no plaintext answers; the configured one keeps them, so its cache is reused.
        results = measured(data.pipeline.with_defences(defence), ["embedding+cloud", "cloud"])
        accuracy, cloud_only = results["embedding+cloud"], results["cloud"]
        rows.append(
            {
                "defence": defence_name(defence),
                "settings": asdict(defence),
                "iin_top1": accuracy["top1"],
                "iin_top5": accuracy["top5"],
                "cloud_iin_top1": cloud_only["top1"],
                "embedding_iin_top1": sending_nothing["top1"],
                "embedding_iin_top5": sending_nothing["top5"],
            }
        )
        log.info(
            "defence %s: IIN top-1 %.3f, cloud-only IIN %.3f, embedding-only IIN %.3f",
            rows[-1]["defence"], accuracy["top1"], cloud_only["top1"], sending_nothing["top1"],
        )  # fmt: skip
    return rows
