"""Precompute as a Lightning predict loop: encoder → keyed generator → cloud, once per image.

Running it through `trainer.predict` lets `--trainer.devices N --trainer.strategy ddp` shard the
images across processes, GPUs or nodes; each process writes its own complete shards to the cache.
The models run on the trainer's device and at the pipeline's precision; only the uint8 images
sent and the rows stored cross to the host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from torch import nn
from torch.utils.data import DataLoader, Dataset

from owsd.components.cloud import CloudClient, LocalCloudClient
from owsd.components.encoder import Encoder
from owsd.components.scrambler import Scrambler
from owsd.data.cache import PairCache, RowTable
from owsd.data.sources import ImageSource
from owsd.errors import ConfigError
from owsd.pipeline import Pipeline, normalised_precision

log = logging.getLogger(__name__)


def fill_cache(pipeline: Pipeline, positions: list[int], trainer: Trainer) -> None:
    """Precompute the images at these source positions that the cache lacks, through `trainer.predict`.

    Only missing images are computed, in fixed batches of them in the given order, so a resumed run cuts the
    same batches as an uninterrupted one and a grown selection sends only its new images. A complete cache
    returns before any model is built.
    """
    cache = pipeline.cache
    missing = set(cache.missing(pipeline.image_ids(positions)))
    todo = [position for position in dict.fromkeys(positions) if pipeline.source.items[position][0] in missing]
    size = pipeline.precompute_batch_size
    batches = [todo[start : start + size] for start in range(0, len(todo), size)]
    log.info(
        "key %s, cache %s: %d of %d images to precompute",
        cache.description["key_fingerprint"], cache.directory, len(todo), len(set(positions)),
    )  # fmt: skip
    if not batches:
        return
    if normalised_precision(trainer.precision) != pipeline.precision:
        raise ConfigError(
            f"trainer.precision={pipeline.precision}, but the Trainer on the {type(trainer.accelerator).__name__} "
            f"runs at {trainer.precision} (the device cannot run the other); choose a precision it supports"
        )
    cloud = pipeline.open_cloud("precompute", pipeline.image_ids(todo))
    for store in [cache, *pipeline.embedding_caches]:
        store.prepare()
    known = KnownEmbeddings(pipeline.embedding_caches, pipeline.image_ids(todo))
    module = PrecomputeModule(
        pipeline.build_encoders(), pipeline.scramblers(), cloud, cache, pipeline.plaintext_baseline,
        pipeline.embedding_caches,
    )  # fmt: skip
    workers = pipeline.num_workers
    loader = DataLoader(
        SourceBatches(pipeline.source, batches, pipeline.image_size, known),
        batch_size=None,
        num_workers=workers,
        pin_memory=trainer.strategy.root_device.type == "cuda",
        prefetch_factor=2 if workers else None,
    )
    try:
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    finally:
        cloud.close()
    trainer.strategy.barrier("owsd-precompute")
    cache.refresh()  # every process's shards are on disk now


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


class PrecomputeModule(LightningModule):
    """Scrambles each encoder's embedding (computed, or read from its embedding cache), asks the cloud, and
    stores a shard per batch."""

    def __init__(
        self,
        encoders: list[Encoder],
        scramblers: list[Scrambler],
        cloud: CloudClient,
        cache: PairCache,
        plaintext_baseline: bool,
        embedding_caches: list[PairCache],
    ) -> None:
        super().__init__()
        if plaintext_baseline and not isinstance(cloud, LocalCloudClient):
            raise TypeError("the plaintext baseline may only be computed by an in-process cloud")
        self.encoders = nn.ModuleList(encoders)
        self.scramblers = nn.ModuleList(scramblers)
        self.cloud = cloud
        self.cache = cache
        self.plaintext_baseline = plaintext_baseline
        self.embedding_caches = embedding_caches
        self._images = 0
        self._started = 0.0
        self._elapsed = 0.0

    def setup(self, stage: str) -> None:
        """Convolutions on CUDA run faster on channels-last tensors; the encoders and the cloud take them."""
        if self.trainer.strategy.root_device.type == "cuda":
            self.encoders.to(memory_format=torch.channels_last)
            self.cloud.to(memory_format=torch.channels_last)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        images, image_ids, known = batch["image"], batch["image_id"], batch["known_embeddings"]
        rows = embed_and_ask(self.encoders, self.scramblers, self.cloud, images, image_ids, batch["position"], known)
        if self.plaintext_baseline:
            rows["plaintext_cloud"] = self.cloud.classify_plaintext(images)
        return rows

    def on_predict_start(self) -> None:
        self._images, self._started, self._elapsed = 0, time.perf_counter(), 0.0

    def on_predict_batch_end(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any], batch_idx: int) -> None:
        embeddings = outputs["embedding"].split([encoder.embedding_dim for encoder in self.encoders], 1)
        for cache, embedding, known in zip(self.embedding_caches, embeddings, batch["known_embeddings"]):
            if known is None:  # computed: kept for a run with another key or cloud
                cache.write_shard(batch["image_id"], batch["label"], {"embedding": embedding})
        self.cache.write_shard(batch["image_id"], batch["label"], outputs)
        self._images += len(batch["image_id"])
        self._elapsed = time.perf_counter() - self._started
        bar = self.trainer.progress_bar_callback
        if isinstance(bar, TQDMProgressBar) and bar.predict_progress_bar is not None:
            bar.predict_progress_bar.set_postfix(images_per_s=f"{self.images_per_second:.1f}")

    def on_predict_end(self) -> None:
        log.info(
            "rank %d precomputed %d images in %.1f s (%.1f images/s)",
            self.global_rank,
            self._images,
            self._elapsed,
            self.images_per_second,
        )

    @property
    def images_per_second(self) -> float:
        """Throughput of the predict loop up to the last stored batch (cache writes included)."""
        return self._images / max(self._elapsed, 1e-9)
