"""The pipeline: everything that turns a private image into the IIN's inputs, built once from the config.

The key, the encoders, one scrambler per encoder, the cloud connection (with the key ledger attached), the
cache, and the checkpoint contract: what an IIN trained on these inputs depends on. Every command shares one;
the data module only adds a split and loaders on top, and precompute, predict, the attacks, the analysis and
the wandb media all build on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace as replace_settings
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from owsd.components.cloud import Cloud, CloudClient, InProcessCloud
from owsd.components.encoder import Encoder
from owsd.components.key import Key, load_or_create_key
from owsd.components.ledger import KeyLedger, configured_budget
from owsd.components.ledger_stores import POSTGRES_SCHEMES, SqliteStore
from owsd.components.scrambler import Defences, Scrambler, ScramblerSettings
from owsd.components.timm_models import ModelSpec, has_preprocessing_marks, without_preprocessing_marks
from owsd.data.cache import PairCache
from owsd.data.sources import ImageSource
from owsd.errors import ConfigError
from owsd.files import check_writable
from owsd.ranges import Count, NonNegativeInt, PositiveNumber, check_arguments

log = logging.getLogger(__name__)

FULL_PRECISION = "32-true"
# Lightning's spellings of the precisions precompute runs at: the encoders and the cloud in `torch.autocast`,
# the generator and the uint8 boundary always in float32. "-true" half precisions would cast the generator too.
PRECISIONS = {None: FULL_PRECISION, 32: FULL_PRECISION, "32": FULL_PRECISION, FULL_PRECISION: FULL_PRECISION}
PRECISIONS |= {
    "bf16": "bf16-mixed",
    "bf16-mixed": "bf16-mixed",
    16: "16-mixed",
    "16": "16-mixed",
    "16-mixed": "16-mixed",
}
# The parts of a contract, as an error names them when two differ.
CONTRACT_PARTS = {
    "key_fingerprint": "key (data.scrambler.key_file)",
    "encoders": "encoders (data.encoders)",
    "cloud": "cloud (data.cloud)",
    "generator": "generator (data.scrambler.size/channels)",
    "image_size": "image size (data.image_size)",
    "defences": "defences (data.scrambler.defences)",
    "precision": "precision (trainer.precision)",
}
DEFAULT_PRECOMPUTE_TIMEOUT = 600.0  # seconds; ranks differ by at most a batch, which takes seconds
EMBEDDINGS_FOLDER = "embeddings"  # in `cache_dir`, beside the folders of whole rows
_AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def normalised_precision(precision: str | int | None) -> str:
    """`bf16` → `bf16-mixed` etc.; a precision precompute cannot honour is a `ConfigError`."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision!r}: precompute runs at 32-true, bf16-mixed or 16-mixed "
            "(the generator and the uint8 images sent must stay exact)"
        )
    return PRECISIONS[precision]


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """`torch.autocast` for a normalised precision on `device`; nothing at full precision or where autocast
    does not exist (the `meta` device)."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    if dtype is None or not torch.amp.autocast_mode.is_autocast_available(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def check_paths(cache_dir: Path, scrambler: ScramblerSettings) -> None:
    """The cache folder, a key file to be created and a SQLite ledger can be written: checked before any of
    them is created, so a refused run leaves none behind."""
    check_writable(cache_dir, "data.cache_dir")
    key_file = Path(scrambler.key_file)
    if key_file.is_dir() or (scrambler.create_key and not key_file.exists()):
        check_writable(key_file, "data.scrambler.key_file", folder=False)
    if not str(scrambler.ledger_file).startswith(POSTGRES_SCHEMES):
        check_writable(Path(scrambler.ledger_file), "data.scrambler.ledger_file", folder=False)
        SqliteStore(Path(scrambler.ledger_file)).check()


class Pipeline:
    """Private images → (embedding, cloud vector) under one key, and the services every command needs for it.

    Args:
        source: the labelled private images.
        encoders: one or more timm backbones; each embedding is scrambled and sent on its own (use case 4).
        cloud: the classifier the scrambled images are sent to.
        scrambler: the key file, the generator's size and the defences (`ScramblerSettings`).
        plaintext_baseline: also ask the (in-process only) cloud about the plaintext images, for the upper bound.
        image_size: size the private images are loaded at before each model's own resize.
        cache_dir: where precomputed pairs are kept, one folder per fingerprint (and each encoder's embeddings).
        precompute_batch_size: images per precompute batch (and per cache shard).
        num_workers: image-decoding worker processes for precompute.
        precompute_timeout: seconds a process of a distributed precompute waits for the others at a meeting
            (the start, rank 0's decision, the end, where the fastest waits for the slowest); raise it for
            devices of unequal speed.
        precision: `trainer.precision` (linked by the commands): the encoders' and the cloud's arithmetic.
        assessment: the command (attack, analyze) whose fresh key this pipeline scrambles under; the ledger
            records the key as that assessment's, never as a key of the user's (see `assessment_keys`).
    """

    def __init__(
        self,
        source: ImageSource,
        encoders: list[ModelSpec],
        cloud: Cloud,
        scrambler: ScramblerSettings,
        plaintext_baseline: bool = False,
        image_size: Count = 256,
        cache_dir: Path = Path(".owsd_cache"),
        precompute_batch_size: Count = 32,
        num_workers: NonNegativeInt = 0,
        precision: str | int | None = FULL_PRECISION,
        precompute_timeout: PositiveNumber = DEFAULT_PRECOMPUTE_TIMEOUT,
        assessment: str | None = None,
    ) -> None:
        check_arguments(Pipeline.__init__, locals(), "data")
        if not encoders:
            raise ConfigError("data.encoders: give at least one encoder")
        if plaintext_baseline and not isinstance(cloud, InProcessCloud):
            raise ConfigError(
                "data.plaintext_baseline needs an in-process cloud (LocalCloud, KerasCifar10Cloud): "
                "plaintext must never reach a remote cloud"
            )
        trained_on = {name.casefold() for name in cloud.trained_on}
        if source.provenance is not None and source.provenance.casefold() in trained_on:
            raise ConfigError(
                f"data.source holds {source.provenance} images, which data.cloud was trained on "
                f"(trained_on: {', '.join(cloud.trained_on)}): the IIN's images must be disjoint from the cloud's"
            )
        if source.labels_are_cloud_classes and cloud.classes is not None and list(cloud.classes) != source.classes:
            raise ConfigError(
                f"data.source's labels are declared the cloud's classes (labels_are_cloud_classes), but data.cloud "
                f"answers {len(cloud.classes)} classes {list(cloud.classes)[:10]} and the source has "
                f"{len(source.classes)} labels {source.classes[:10]}"
            )
        check_paths(Path(cache_dir), scrambler)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if num_workers > cores:
            raise ConfigError(f"data.num_workers={num_workers}: give 0 (decode in the main process) to {cores}, "
                              f"the cores this process may use")  # fmt: skip
        self.settings = {
            "source": source, "encoders": list(encoders), "cloud": cloud, "scrambler": scrambler,
            "plaintext_baseline": plaintext_baseline, "image_size": image_size, "cache_dir": Path(cache_dir),
            "precompute_batch_size": precompute_batch_size, "num_workers": num_workers, "precision": precision,
            "precompute_timeout": precompute_timeout, "assessment": assessment,
        }  # fmt: skip
        self.source, self.encoders, self.cloud, self.scrambler = source, list(encoders), cloud, scrambler
        self.plaintext_baseline, self.image_size, self.cache_dir = plaintext_baseline, image_size, Path(cache_dir)
        self.precompute_batch_size, self.num_workers = precompute_batch_size, num_workers
        self.precompute_timeout = float(precompute_timeout)
        self.precision = normalised_precision(precision)
        self.assessment = assessment

    def replace(self, **changes: Any) -> Pipeline:
        """Another pipeline with some settings changed (other defences, encoders or key file)."""
        return Pipeline(**{**self.settings, **changes})

    def with_defences(self, defences: Defences) -> Pipeline:
        """This pipeline under other defences (its own cache; no plaintext answers, which it would not use)."""
        if defences == self.scrambler.defences:
            return self
        scrambler = replace_settings(self.scrambler, defences=defences)
        return self.replace(scrambler=scrambler, plaintext_baseline=False)

    def key(self) -> Key:
        """The key (created first where `create_key` allows it); read once per pipeline."""
        return self._key

    @cached_property
    def _key(self) -> Key:
        key, created = load_or_create_key(Path(self.scrambler.key_file), self.scrambler.create_key)
        if created:
            log.info("created key file %s", self.scrambler.key_file)
        return key

    def check_budget(self, command: str, image_ids: Sequence[str]) -> KeyLedger:
        """The key ledger for `command`, with the key registered and the images this command will send (one per
        encoder for each of `image_ids`) checked against its budget, so a run that cannot finish never starts."""
        key, key_file = self.key(), Path(self.scrambler.key_file)
        budget = configured_budget(self.scrambler.key_budget, self.scrambler.key_budget_file)
        ledger = KeyLedger(self.scrambler.ledger_file, command)
        if self.assessment is None:
            ledger.register(key.fingerprint, key_file.resolve(), key_file.stat().st_mtime, budget)
        else:  # its key file is deleted when the assessment ends
            ledger.register(key.fingerprint, None, key_file.stat().st_mtime, None, assessment=self.assessment)
        ledger.check(key.fingerprint, image_ids, images_per_id=len(self.encoders))
        return ledger

    def open_cloud(self, command: str, image_ids: Sequence[str] = ()) -> CloudClient:
        """The cloud client with the key ledger attached (`check_budget`): every batch it sends is recorded, and
        refused beyond the key's budget, before it goes out."""
        ledger = self.check_budget(command, image_ids)
        client = self.cloud.open()
        client.ledger = ledger
        return client

    def build_encoders(self) -> list[Encoder]:
        return [Encoder(spec) for spec in self.encoders]

    def scramblers(self, settings: ScramblerSettings | None = None, key: Key | None = None) -> list[Scrambler]:
        """One scrambler per encoder, each on its own subkey (as configured, or with other `settings` or `key`)."""
        settings, key = settings or self.scrambler, key or self.key()
        size = len(self.source.items)
        return [Scrambler(key, index, spec.embedding_dim, settings, size) for index, spec in enumerate(self.encoders)]

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The arithmetic of the encoders and the cloud on `device` (the generator turns it off for itself)."""
        return autocast(self.precision, device)

    @cached_property
    def contract(self) -> dict[str, Any]:
        """What an IIN trained on this pipeline's outputs depends on: models, key fingerprint, generator, cloud,
        defences, precision. A checkpoint records it, so an IIN is never used with inputs that mean another thing.
        Parts at their defaults (no defences, float32) are left out, so caches made before they existed stay valid."""
        contract = {
            "image_size": self.image_size,
            "encoders": [spec.identity for spec in self.encoders],
            "key_fingerprint": self.key().fingerprint,
            "generator": {"size": self.scrambler.size, "channels": self.scrambler.channels},
            "cloud": self.cloud.cloud_id,
        }
        if self.scrambler.defences.active:
            contract["defences"] = self.scrambler.defences.active
        if self.precision != FULL_PRECISION:
            contract["precision"] = self.precision
        return contract

    def contract_difference(self, recorded: dict[str, Any], where: str) -> str | None:
        """The first part in which a `recorded` contract differs from this pipeline's, worded for an error
        ("key (data.scrambler.key_file): a in `where`, b in the config"); None when they agree."""
        ours = self.contract if has_preprocessing_marks(recorded) else without_preprocessing_marks(self.contract)
        for part, name in CONTRACT_PARTS.items():
            if recorded.get(part) != ours.get(part):
                return f"{name}: {recorded.get(part)} in {where}, {ours.get(part)} in the config"
        return None

    @cached_property
    def cache(self) -> PairCache:
        """The cache of this pipeline's rows, shared by every split and repetition of the process."""
        description = {"source": self.source.identity, **self.contract, "plaintext_baseline": self.plaintext_baseline}
        return PairCache.shared(self.cache_dir, description, without_preprocessing_marks(description))

    @cached_property
    def embedding_caches(self) -> list[PairCache]:
        """Per encoder, a cache of its embeddings alone, under `cache_dir/embeddings/`. An embedding depends on
        the image, the encoder, the image size and the precision, not on the key, the generator or the cloud,
        so a run with another cloud or key (the regime search's clouds, a new key) runs no encoder again."""
        shared = {"source": self.source.identity, "image_size": self.image_size}
        if self.precision != FULL_PRECISION:
            shared["precision"] = self.precision
        root = self.cache_dir / EMBEDDINGS_FOLDER
        descriptions = [{**shared, "encoder": spec.identity} for spec in self.encoders]
        return [PairCache.shared(root, one, without_preprocessing_marks(one)) for one in descriptions]

    def image_ids(self, positions: list[int]) -> list[str]:
        return [self.source.items[position][0] for position in positions]
