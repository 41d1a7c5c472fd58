"""What an attack needs, gathered once: the cached rows and the scrambled bytes the cloud was sent.

Scrambled images are not cached; they are regenerated from the cached embeddings with the key, which
gives exactly the bytes that were sent (the generator is deterministic and batch-independent) without
running the encoder or the cloud again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from lightning.pytorch import Trainer

from owsd.components.key import Key
from owsd.components.scrambler import Scrambler, ScramblerSettings
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from owsd.pipeline import Pipeline

log = logging.getLogger(__name__)

_CHUNK = 256  # images scrambled at a time


@dataclass
class Material:
    """Per image of the data module's split, in source order.

    `labels` are IIN classes (0..C-1); `embeddings`, `cloud` and `plaintext_cloud` belong to the first
    encoder (the attacks target one generator); `originals` are the private images at a small size.
    """

    image_ids: list[str]
    positions: list[int]
    labels: torch.Tensor
    embeddings: torch.Tensor
    cloud: torch.Tensor
    plaintext_cloud: torch.Tensor | None
    originals: torch.Tensor
    scrambled: torch.Tensor

    def __len__(self) -> int:
        return len(self.image_ids)


def gather(data: OWSDDataModule, trainer: Trainer, original_size: int) -> Material:
    """Fill the cache for the data module's split (a no-op on a hit), then read and re-scramble it."""
    pipeline = data.pipeline
    if len(pipeline.encoders) != 1:
        raise ConfigError("the attack suite and analysis target one generator: give data.encoders one encoder")
    data.prepare_cache(trainer)
    positions = data.split.all
    image_ids = pipeline.image_ids(positions)
    rows = data.read_pairs(positions).tensors
    log.info("loading %d private images at %d×%d", len(positions), original_size, original_size)
    originals = torch.stack([pipeline.source.load(position, original_size) for position in positions])
    return Material(
        image_ids,
        positions,
        rows["label"],
        rows["embedding"],
        rows["cloud"],
        rows.get("plaintext_cloud"),
        originals,
        scramble(pipeline, rows["embedding"], image_ids, positions),
    )


def scrambler_for(pipeline: Pipeline, settings: ScramblerSettings | None = None, key: Key | None = None) -> Scrambler:
    """The first encoder's scrambler: as configured, or with other `settings` (defences, width) or `key`."""
    return pipeline.scramblers(settings, key)[0]


def scramble(
    pipeline: Pipeline,
    embeddings: torch.Tensor,
    image_ids: list[str],
    positions: list[int],
    settings: ScramblerSettings | None = None,
    key: Key | None = None,
) -> torch.Tensor:
    """The uint8 images `scrambler_for(pipeline, settings, key)` sends for these embeddings, computed in the order
    its keys rotate (each key's generator built once) and returned in the order given."""
    scrambler = scrambler_for(pipeline, settings, key)
    order = scrambler.rotation_order(positions)
    parts = []
    for start in range(0, len(order), _CHUNK):
        rows = order[start : start + _CHUNK]
        parts.append(scrambler.scramble(embeddings[rows], [image_ids[i] for i in rows], [positions[i] for i in rows]))
    return torch.cat([part.pixels for part in parts])[torch.tensor(order).argsort()]
