"""What each defence costs the user: the IIN's test accuracy with it, beside the IIN that sends nothing.

Each defended scrambler is a new pipeline (its own cache fingerprint): its images are encoded, scrambled
and sent to the cloud once, then the configured IIN is trained and tested on the configured split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, replace

from lightning.pytorch import Trainer, seed_everything

from owsd.components.scrambler import Defences
from owsd.datamodule import OWSDDataModule
from owsd.iin_module import IINModule, fit_and_test, variant

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
) -> list[dict]:
    """Test top-1/top-5 of the OWSD IIN (`embedding+cloud`) per defence, of the `cloud` IIN (what the cloud's
    answers alone still tell the user), and of the `embedding` IIN (sending nothing at all)."""

    def measure(pipeline: OWSDDataModule, iin_input: str) -> dict[str, float]:
        pipeline.prepare_cache(make_trainer())
        seed_everything(seed, verbose=False)
        iin = variant(model, iin_input)
        metrics = fit_and_test(make_trainer(), iin, pipeline)
        return {"top1": metrics[f"test/{iin.name}/top1"], "top5": metrics[f"test/{iin.name}/top5"]}

    sending_nothing = measure(data, "embedding")
    rows = []
    for defence in [data.scrambler.defences, *defences]:
        # A defended pipeline needs no plaintext answers; the configured one keeps them, so its cache is reused.
        pipeline = data if defence == data.scrambler.defences else data.replace(
            scrambler=replace(data.scrambler, defences=defence), plaintext_baseline=False
        )  # fmt: skip
        accuracy, cloud_only = measure(pipeline, "embedding+cloud"), measure(pipeline, "cloud")
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
