"""One precompute batch: its images loaded from the source with the embeddings already cached, and its rows
computed (each encoder's embedding, scrambled under that encoder's subkey and sent to the cloud).

Pure torch and data, no Lightning: `owsd.precompute` runs these over a process's share of the batches, and
`owsd.prediction` runs `embed_and_ask` on new images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from owsd.components.cloud import CloudClient, LocalCloudClient
from owsd.components.encoder import Encoder
from owsd.components.scrambler import Scrambler
from owsd.data.cache import PairCache, RowTable
from owsd.data.sources import ImageSource

log = logging.getLogger(__name__)


def embed_and_ask(
    encoders: Sequence[Encoder],
    scramblers: Sequence[Scrambler],
    cloud: CloudClient | None,
    images: torch.Tensor,
    image_ids: list[str],
    positions: list[int],
    known: Sequence[torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor]:
    """The IIN's inputs for a batch: every encoder's embedding and, with a cloud, its answer for the embedding
    scrambled under that encoder's subkey (each concatenated in encoder order). An embedding in `known` (by
    encoder; None where there is none) is used instead of running its encoder."""
    embeddings, vectors = [], []
    known = known or [None] * len(encoders)
    for encoder, scrambler, cached in zip(encoders, scramblers, known):
        embedding = encoder(images) if cached is None else cached
        embeddings.append(embedding)
        if cloud is not None:
            vectors.append(cloud(scrambler.scramble(embedding, image_ids, positions)))
    rows = {"embedding": torch.cat(embeddings, 1)}
    if vectors:
        rows["cloud"] = torch.cat(vectors, 1)
    return rows


class KnownEmbeddings:
    """The embeddings each encoder's (prepared) cache held when precompute started (memory-mapped, so holding
    them costs no memory), for the loader to hand out with the images."""

    def __init__(self, caches: Sequence[PairCache], image_ids: list[str]) -> None:
        self.tables: list[RowTable] = [cache.table() for cache in caches]  # read once: no shard is loaded twice
        for cache, table in zip(caches, self.tables):
            held = sum(image_id in table.row_of for image_id in image_ids)
            log.info("embeddings %s: %d of %d images cached", cache.directory, held, len(image_ids))

    def lookup(self, image_ids: list[str]) -> list[torch.Tensor | None]:
        """Per encoder, the batch's cached embeddings (on the host), or None unless every one of them is cached."""
        found: list[torch.Tensor | None] = []
        for table in self.tables:
            if all(image_id in table.row_of for image_id in image_ids):
                found.append(table.fields["embedding"][[table.row_of[image_id] for image_id in image_ids]])
            else:
                found.append(None)
        return found


class SourceBatches(Dataset):
    """Fixed batches of a source's images (positions into its items), loaded at `size`, with the embeddings
    already `known` of them.

    Each item is a whole batch, so the batches are the same however many processes share them and
    whether a run starts afresh or resumes: a cached row never depends on how the work was split.
    """

    def __init__(self, source: ImageSource, batches: list[list[int]], size: int, known: KnownEmbeddings) -> None:
        self.source, self.batches, self.size, self.known = source, batches, size, known

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        positions = self.batches[index]
        image_ids = [self.source.items[position][0] for position in positions]
        return {
            "image": torch.stack([self.source.load(position, self.size) for position in positions]),
            "image_id": image_ids,
            "position": list(positions),
            "label": torch.tensor([self.source.items[position][1] for position in positions]),
            "known_embeddings": self.known.lookup(image_ids),
        }


class ScrambleAndAsk(nn.Module):
    """A batch's rows: each encoder's embedding (computed, or read from its embedding cache), scrambled and sent
    to the cloud, and with `plaintext_baseline` the cloud's answer for the plain images too."""

    def __init__(
        self, encoders: list[Encoder], scramblers: list[Scrambler], cloud: CloudClient, plaintext_baseline: bool
    ) -> None:
        super().__init__()
        if plaintext_baseline and not isinstance(cloud, LocalCloudClient):
            raise TypeError("the plaintext baseline may only be computed by an in-process cloud")
        self.encoders = nn.ModuleList(encoders)
        self.scramblers = nn.ModuleList(scramblers)
        self.cloud = cloud
        self.plaintext_baseline = plaintext_baseline

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, image_ids, known = batch["image"], batch["image_id"], batch["known_embeddings"]
        rows = embed_and_ask(self.encoders, self.scramblers, self.cloud, images, image_ids, batch["position"], known)
        if self.plaintext_baseline:
            rows["plaintext_cloud"] = self.cloud.classify_plaintext(images)
        return rows


class NoBatches(Dataset):
    """The loader of a rank that the work left without a batch: one empty step, because Lightning refuses a
    loader of length 0 on one rank beside longer ones on the others (and counts them in a collective)."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {}
