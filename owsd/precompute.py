"""Precompute as a Lightning predict loop: encoder → keyed generator → cloud, once per image.

Running it through `trainer.predict` lets `--trainer.devices N`, `torchrun` or SLURM shard the batches across
processes, GPUs or nodes (`owsd.distributed` says what runs where). Rank 0 decides the work; each process writes
its own complete shards to the cache. The models run on the trainer's device and at the pipeline's precision;
only the uint8 images sent and the rows stored cross to the host.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader

from owsd.components.ledger_stores import POSTGRES_SCHEMES
from owsd.data.cache import PairCache
from owsd.distributed import (
    decided_by_rank_zero,
    meet,
    peers_answering,
    several_processes,
    stop_started_processes,
    watch_the_other_processes,
)
from owsd.errors import ConfigError, KeyFileError
from owsd.files import OWNER_ONLY_FILE, atomic_write, owner_only_folder
from owsd.interrupts import stop_on_signals
from owsd.pipeline import Pipeline, normalised_precision
from owsd.precompute_batch import KnownEmbeddings, NoBatches, ScrambleAndAsk, SourceBatches

log = logging.getLogger(__name__)

MEETING_FILE = ".owsd-meeting-"  # + a random token: rank 0 leaves it in data.cache_dir for the others to find


@dataclass(frozen=True)
class Work:
    """What rank 0 decided: the batches to compute (source positions), and what every rank must see as it does."""

    batches: list[list[int]]
    description: dict[str, Any]  # the cache's: source identity, pipeline contract, plaintext baseline
    meeting: str | None = None  # the file rank 0 wrote in data.cache_dir, and its content
    token: str | None = None


def plan_work(pipeline: Pipeline, positions: list[int], trainer: Trainer) -> Work:
    """The images at these positions that the cache lacks, in fixed batches in the given order, or in the order
    their keys rotate (so a resumed run cuts the same batches as an uninterrupted one and a grown selection sends
    only its new images), checked against the key's budget. Runs on rank 0 (or the only process)."""
    ledger, nodes = str(pipeline.scrambler.ledger_file), trainer.num_nodes
    if nodes > 1 and not ledger.startswith(POSTGRES_SCHEMES):
        raise ConfigError(
            f"data.scrambler.ledger_file={ledger} is a SQLite file, and this precompute runs on {nodes} nodes: "
            "each node would count its own exposures against the key's budget; give every node one PostgreSQL "
            "ledger (postgresql://user@host/db)"
        )
    cache = pipeline.cache
    for store in [cache, *pipeline.embedding_caches]:
        if store.directory.is_dir():
            store.prepare()  # a damaged manifest is written anew, even when nothing is left to compute
    missing = set(cache.missing(pipeline.image_ids(positions)))
    todo = [position for position in dict.fromkeys(positions) if pipeline.source.items[position][0] in missing]
    todo = [todo[i] for i in pipeline.scramblers()[0].rotation_order(todo)]  # all encoders rotate alike
    size = pipeline.precompute_batch_size
    batches = [todo[start : start + size] for start in range(0, len(todo), size)]
    log.info(
        "key %s, cache %s: %d of %d images to precompute",
        cache.description["key_fingerprint"], cache.directory, len(todo), len(set(positions)),
    )  # fmt: skip
    if batches and normalised_precision(trainer.precision) != pipeline.precision:
        raise ConfigError(
            f"trainer.precision={pipeline.precision}, but the Trainer on the {type(trainer.accelerator).__name__} "
            f"runs at {trainer.precision} (the device cannot run the other); choose a precision it supports"
        )
    if batches:
        pipeline.check_budget("precompute", pipeline.image_ids(todo))
        for store in [cache, *pipeline.embedding_caches]:
            store.prepare()
            store.table()  # packs any shards of an earlier run here, so no other rank packs at the same time
    return Work(batches, cache.description)


def fill_cache(pipeline: Pipeline, positions: list[int], trainer: Trainer) -> None:
    """Precompute the images at these source positions that the cache lacks, through `trainer.predict`.

    On one process, a complete cache returns before any model is built. On several, every process goes
    through the predict loop: rank 0 decides the work there, once the processes have met, and each takes
    every N-th batch; they meet again at the end, when every shard is on disk.
    """
    distributed = several_processes(trainer)
    with ExitStack() as held:
        if trainer.global_rank == 0:  # one sending command per cache: rank 0 holds it for all of its ranks
            held.enter_context(sending_alone(pipeline.cache))
        _fill(pipeline, positions, trainer, distributed)
    pipeline.cache.refresh()  # every process's shards are on disk now


def _fill(pipeline: Pipeline, positions: list[int], trainer: Trainer, distributed: bool) -> None:
    work = None
    if not distributed:
        work = plan_work(pipeline, positions, trainer)
        if not work.batches:
            return
    module = PrecomputeModule(pipeline, positions, work)
    try:
        with peers_answering():
            trainer.predict(module, return_predictions=False)
    except BaseException:
        stop_started_processes(trainer)
        raise
    finally:
        module.close()
    if distributed:
        meet(trainer.strategy, "owsd-precompute-end")


@contextmanager
def sending_alone(cache: PairCache) -> Iterator[None]:
    """Hold this cache's sending lock while the work is planned and sent: a second command on the same cache
    (another `owsd fit` started at once) waits, then finds the images cached, so no image is sent twice. The
    lock is the kernel's (flock): it goes with a process that dies."""
    owner_only_folder(cache.directory.parent)
    lock = FileLock(cache.directory.with_name(f".{cache.directory.name}.sending"), mode=OWNER_ONLY_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("cache %s: another owsd is sending its images; waiting for it to finish", cache.directory)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class PrecomputeModule(LightningModule):
    """Runs `ScrambleAndAsk` over this process's share of the work and stores a shard per batch.

    The models are built in `setup`, once the work is decided, and only on a process that has batches. Nothing
    of it leaves the process: no other rank receives its weights, and no checkpoint Lightning saves on its own
    (SLURM's requeue) holds them: its state is the key's generators.
    """

    def __init__(self, pipeline: Pipeline, positions: list[int], work: Work | None = None) -> None:
        super().__init__()
        self.pipeline, self.positions, self.work = pipeline, positions, work
        self.batches: list[list[int]] = []
        self.model: ScrambleAndAsk | None = None
        self._watch: threading.Event | None = None
        self._images = 0
        self._started = 0.0
        self._elapsed = 0.0

    def setup(self, stage: str) -> None:
        """Several processes: rank 0 decides the work now that all have met, every rank checks it sees what rank 0
        sees, and each takes every N-th batch. Then the models of a process with batches are built."""
        if self.work is None:
            self._watch = watch_the_other_processes(self.trainer)
            self.work = self._decide_on_rank_zero()
        self.batches = self.work.batches[self.global_rank :: self.trainer.world_size]
        if not self.batches:
            log.info("rank %d: no batch left to it", self.global_rank)
            return
        pipeline = self.pipeline
        cloud = pipeline.open_cloud("precompute", pipeline.image_ids([p for batch in self.batches for p in batch]))
        self.model = ScrambleAndAsk(
            pipeline.build_encoders(), pipeline.scramblers(), cloud, pipeline.plaintext_baseline
        )
        # Outside `fit`, Lightning's DDP broadcasts rank 0's parameters and buffers to the others (torch's
        # `_sync_module_states`, which honours this DDP attribute): that would send the key's generator weights
        # over the network, and wait forever for a rank without batches, which has no model. Each rank builds
        # its own from the key instead.
        self._ddp_params_and_buffers_to_ignore = [
            name for name, _ in chain(self.named_parameters(), self.named_buffers())
        ]
        if self.trainer.strategy.root_device.type == "cuda":  # convolutions run faster on channels-last tensors
            self.model.encoders.to(memory_format=torch.channels_last)
            self.model.cloud.to(memory_format=torch.channels_last)

    def _decide_on_rank_zero(self) -> Work:
        folder = Path(self.pipeline.cache_dir)
        token = secrets.token_hex(8)
        meeting = folder / f"{MEETING_FILE}{token}"

        def decide() -> Work:
            work = plan_work(self.pipeline, self.positions, self.trainer)
            owner_only_folder(folder)
            atomic_write(meeting, lambda path: path.write_text(token), OWNER_ONLY_FILE)
            return replace(work, meeting=meeting.name, token=token)

        try:
            return decided_by_rank_zero(self.trainer.strategy, decide, self._sees_what_rank_zero_sees)
        finally:
            if self.global_rank == 0:
                meeting.unlink(missing_ok=True)  # every rank has looked for it by now

    def _sees_what_rank_zero_sees(self, work: Work) -> None:
        """Raise, naming the path and the fix, unless this process sees rank 0's cache folder, key and source."""
        if self.global_rank == 0:
            return
        pipeline, folder = self.pipeline, Path(self.pipeline.cache_dir)
        seen = folder / str(work.meeting)
        if not seen.is_file() or seen.read_text() != work.token:
            raise ConfigError(
                f"does not see rank 0's cache folder {folder} (no {work.meeting} in it): several nodes need "
                "data.cache_dir on a filesystem they all mount (NFS, Lustre, a cluster's shared scratch)"
            )
        key_file = Path(pipeline.scrambler.key_file)
        if not key_file.is_file():
            raise KeyFileError(
                f"key file {key_file} does not exist on this node: give every node the same key file "
                "(data.scrambler.key_file), e.g. on the filesystem they share, readable by its owner only"
            )
        recorded = work.description
        difference = pipeline.contract_difference(recorded, "rank 0's config")
        if difference is not None:
            raise ConfigError(f"its config differs from rank 0's: {difference}")
        if pipeline.source.identity != recorded["source"]:
            raise ConfigError(
                f"data.source differs from rank 0's: {pipeline.source.identity} here, {recorded['source']} on "
                "rank 0; every node must see the same images"
            )
        others = sorted(k for k in recorded if recorded[k] != pipeline.cache.description.get(k))
        if others:
            raise ConfigError(f"its config differs from rank 0's in {', '.join(others)}")

    def predict_dataloader(self) -> DataLoader:
        pipeline = self.pipeline
        if not self.batches:
            return DataLoader(NoBatches(), batch_size=None)
        ids = pipeline.image_ids([position for batch in self.batches for position in batch])
        known = KnownEmbeddings(pipeline.embedding_caches, ids)
        return DataLoader(
            SourceBatches(pipeline.source, self.batches, pipeline.image_size, known),
            batch_size=None,
            num_workers=pipeline.num_workers,
            pin_memory=self.trainer.strategy.root_device.type == "cuda",
            prefetch_factor=2 if pipeline.num_workers else None,
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self.model(batch) if self.model is not None else {}  # {}: the empty step of `NoBatches`

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint Lightning saves of precompute (SLURM's requeue) holds no weights: they are the key's
        generators, the encoders and the cloud. A requeued run resumes from the cache's shards instead."""
        checkpoint["state_dict"] = {}

    def close(self) -> None:
        if self._watch is not None:
            self._watch.set()
        if self.model is not None:
            self.model.cloud.close()

    def on_predict_start(self) -> None:
        # Lightning's SIGTERM handler, installed just before this hook, first tells the other ranks over a
        # collective, inside the handler: with a rank that is gone, or one that got no signal, that waits until
        # the timeout. Ours stops this process at once; the launcher stops the others (`torchrun`, `srun`), or
        # rank 0 does (`stop_started_processes`), or they see it end (`watch_the_other_processes`). Lightning
        # puts its saved handlers, ours, back when predict ends.
        stop_on_signals()
        self._images, self._started, self._elapsed = 0, time.perf_counter(), 0.0

    def on_predict_batch_end(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any], batch_idx: int) -> None:
        if self.model is None:
            return
        embeddings = outputs["embedding"].split([encoder.embedding_dim for encoder in self.model.encoders], 1)
        for cache, embedding, known in zip(self.pipeline.embedding_caches, embeddings, batch["known_embeddings"]):
            if known is None:  # computed: kept for a run with another key or cloud
                cache.write_shard(batch["image_id"], batch["label"], {"embedding": embedding})
        self.pipeline.cache.write_shard(batch["image_id"], batch["label"], outputs)
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
