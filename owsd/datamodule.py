"""The LightningDataModule: picks the experiment's images, fills the cache, serves cached pairs to the IIN."""

from __future__ import annotations

import copy
import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from owsd.components.cloud import Cloud, CloudClient, InProcessCloud
from owsd.components.encoder import Encoder
from owsd.components.key import Key, load_key, save_key
from owsd.components.ledger import KeyLedger, configured_budget
from owsd.components.scrambler import Scrambler, ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.cache import CachedRows, PairCache
from owsd.data.selection import Split, SplitSettings, split_items
from owsd.data.sources import ImageSource
from owsd.errors import ConfigError
from owsd.precompute import PrecomputeModule, SourceBatches

log = logging.getLogger(__name__)


class CachedPairs(Dataset):
    """Cached rows as IIN samples; `label` is the IIN class (the index into the chosen labels)."""

    def __init__(self, rows: CachedRows, class_of_label: dict[int, int]) -> None:
        self.tensors: dict[str, torch.Tensor] = {
            "embedding": rows.embedding,
            "cloud": rows.cloud,
            "label": torch.tensor([class_of_label[int(label)] for label in rows.labels]),
        }
        if rows.plaintext_cloud is not None:
            self.tensors["plaintext_cloud"] = rows.plaintext_cloud

    def __len__(self) -> int:
        return len(self.tensors["label"])

    def __getitem__(self, index: int | list[int]) -> dict[str, torch.Tensor]:
        """One sample, or a whole batch for a list of indices (one gather per tensor, no collation)."""
        return {name: tensor[index] for name, tensor in self.tensors.items()}

    def first_columns(self, embedding: int, cloud: int) -> CachedPairs:
        """The same samples with only the first `embedding` / `cloud` columns of those features."""
        narrowed = copy.copy(self)
        narrowed.tensors = {
            **self.tensors,
            "embedding": self.tensors["embedding"][:, :embedding],
            "cloud": self.tensors["cloud"][:, :cloud],
        }
        return narrowed


class OWSDDataModule(LightningDataModule):
    """Private labelled images → cached (embedding, cloud vector, label) → IIN batches.

    Args:
        source: the labelled private images.
        encoders: one or more timm backbones; each embedding is scrambled and sent on its own (use case 4).
        cloud: the classifier the scrambled images are sent to.
        scrambler: the key file, the generator's size and the defences (`ScramblerSettings`).
        split: the labels, images per label and train/val/test split (`SplitSettings`).
        plaintext_baseline: also ask the (local only) cloud about the plaintext images, for the upper bound.
        image_size: size the private images are loaded at before each model's own resize.
        cache_dir: where precomputed pairs are kept, one folder per pipeline fingerprint.
        batch_size: IIN batch size.
        precompute_batch_size: images per precompute batch (and per cache shard).
        num_workers: data-loading worker processes for precompute.
    """

    def __init__(
        self,
        source: ImageSource,
        encoders: list[ModelSpec],
        cloud: Cloud,
        scrambler: ScramblerSettings,
        split: SplitSettings = SplitSettings(),
        plaintext_baseline: bool = False,
        image_size: int = 256,
        cache_dir: Path = Path(".owsd_cache"),
        batch_size: int = 64,
        precompute_batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.settings = {
            "source": source, "encoders": encoders, "cloud": cloud, "scrambler": scrambler, "split": split,
            "plaintext_baseline": plaintext_baseline, "image_size": image_size, "cache_dir": cache_dir,
            "batch_size": batch_size, "precompute_batch_size": precompute_batch_size, "num_workers": num_workers,
        }  # fmt: skip
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
        self.source, self.encoders, self.cloud = source, list(encoders), cloud
        self.scrambler, self.split_settings = scrambler, split
        self.plaintext_baseline, self.image_size = plaintext_baseline, image_size
        self.cache_dir = Path(cache_dir)
        self.batch_size, self.precompute_batch_size, self.num_workers = batch_size, precompute_batch_size, num_workers
        self.datasets: dict[str, CachedPairs] = {}

    def replace(self, **changes: Any) -> OWSDDataModule:
        """The same pipeline with some settings changed (another split, other defences), ready to set up."""
        return OWSDDataModule(**{**self.settings, **changes})

    @cached_property
    def split(self) -> Split:
        """The experiment's images: fixed by the settings, so computed once."""
        return split_items([label for _, label in self.source.items], self.split_settings, self.source.classes)

    @property
    def precompute_batches(self) -> list[list[int]]:
        """The split's images in fixed batches: a cached row never depends on how a run was cut short or shared."""
        positions, size = self.split.all, self.precompute_batch_size
        return [positions[start : start + size] for start in range(0, len(positions), size)]

    @property
    def num_classes(self) -> int:
        return len(self.split.labels)

    @property
    def class_names(self) -> list[str]:
        """Names of the IIN's classes, in its output order."""
        return [self.source.classes[label] for label in self.split.labels]

    @property
    def cloud_classes_known(self) -> bool:
        """Whether IIN class i is the cloud's class i, so agreement with the cloud can be measured."""
        return self.source.labels_are_cloud_classes and self.split.labels == list(range(len(self.source.classes)))

    def key(self) -> Key:
        key_file = Path(self.scrambler.key_file)
        if self.scrambler.create_key and not key_file.exists():
            save_key(Key.generate(), key_file)
            log.info("created key file %s", key_file)
        return load_key(key_file)

    def open_cloud(self, command: str, upcoming: int = 0) -> CloudClient:
        """The cloud client with the key ledger attached: every batch it sends is recorded, and refused
        beyond the key's budget, before it goes out. `upcoming`, the most scrambled images this `command`
        may send, is checked against the budget first, so a run that cannot finish never starts."""
        key, key_file = self.key(), Path(self.scrambler.key_file)
        budget = configured_budget(self.scrambler.key_budget, self.scrambler.key_budget_file)
        ledger = KeyLedger(self.scrambler.ledger_file, command)
        ledger.register(key.fingerprint, key_file.resolve(), key_file.stat().st_mtime, budget)
        ledger.check(key.fingerprint, upcoming)
        client = self.cloud.open()
        client.ledger = ledger
        return client

    def scramblers(
        self, key: Key, embedding_dims: list[int], settings: ScramblerSettings | None = None
    ) -> list[Scrambler]:
        """One scrambler per encoder, each on its own subkey (as configured, or with other `settings`)."""
        settings, size = settings or self.scrambler, len(self.source.items)
        return [Scrambler(key, index, dim, settings, size) for index, dim in enumerate(embedding_dims)]

    @cached_property
    def pipeline(self) -> dict[str, Any]:
        """What turns an image into the IIN's inputs: models, key fingerprint, generator, cloud, defences.

        A checkpoint records it, so `owsd predict` can refuse an IIN trained for another key or model."""
        pipeline = {
            "image_size": self.image_size,
            "encoders": [{"name": spec.name, "weights": spec.weights_id} for spec in self.encoders],
            "key_fingerprint": self.key().fingerprint,
            "generator": {"size": self.scrambler.size, "channels": self.scrambler.channels},
            "cloud": self.cloud.cloud_id,
        }
        if self.scrambler.defences.active:  # absent when off, so caches made before defences existed stay valid
            pipeline["defences"] = self.scrambler.defences.active
        return pipeline

    @cached_property
    def pair_cache(self) -> PairCache:
        """The cache for this pipeline; built once, so its shards are read once per run."""
        description = {"source": self.source.identity, **self.pipeline, "plaintext_baseline": self.plaintext_baseline}
        return PairCache(self.cache_dir, description)

    def prepare_cache(self, trainer: Trainer) -> None:
        """Precompute every image of the split that the cache lacks, through `trainer.predict`.

        A complete cache returns before any model is built.
        """
        cache = self.pair_cache
        todo = [batch for batch in self.precompute_batches if cache.missing(self.image_ids(batch))]
        log.info(
            "key %s, cache %s: %d of %d images to precompute",
            cache.description["key_fingerprint"],
            cache.directory,
            sum(map(len, todo)),
            len(self.split.all),
        )
        if not todo:
            return
        cloud = self.open_cloud("precompute", upcoming=sum(map(len, todo)) * len(self.encoders))
        cache.prepare()
        encoders = [Encoder(spec) for spec in self.encoders]
        scramblers = self.scramblers(self.key(), [encoder.embedding_dim for encoder in encoders])
        module = PrecomputeModule(encoders, scramblers, cloud, cache, self.plaintext_baseline)
        loader = DataLoader(
            SourceBatches(self.source, todo, self.image_size), batch_size=None, num_workers=self.num_workers
        )
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        trainer.strategy.barrier("owsd-precompute")
        cache.refresh()  # every process's shards are on disk now

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        split = self.split
        for name, positions in (("train", split.train), ("val", split.val), ("test", split.test)):
            self.datasets[name] = self.pairs(positions)

    def with_first_encoders(self, count: int) -> OWSDDataModule:
        """The pipeline of the first `count` encoders (use case 4), served from this one's cache.

        Encoder i's scrambled image and cloud answer depend only on its own subkey, so they are the same in
        any ensemble that starts with the same encoders: one precompute serves every ensemble size.
        """
        if not 1 <= count <= len(self.encoders):
            raise ConfigError(f"an ensemble of {count} encoders, but data.encoders lists {len(self.encoders)}")
        self.setup()
        widths = [spec.embedding_dim for spec in self.encoders]
        cloud_width = self.datasets["train"].tensors["cloud"].shape[1] // len(self.encoders) * count
        smaller = self.replace(encoders=self.encoders[:count])
        smaller.split = self.split
        smaller.datasets = {
            name: pairs.first_columns(sum(widths[:count]), cloud_width) for name, pairs in self.datasets.items()
        }
        return smaller

    def pairs(self, positions: list[int]) -> CachedPairs:
        """The cached rows of these images, labelled with IIN classes (the cache must hold them)."""
        class_of_label = {label: index for index, label in enumerate(self.split.labels)}
        return CachedPairs(self.pair_cache.read(self.image_ids(positions)), class_of_label)

    def image_ids(self, positions: list[int]) -> list[str]:
        return [self.source.items[position][0] for position in positions]

    @property
    def feature_dims(self) -> dict[str, int]:
        """Width of each cached feature (embedding, cloud, plaintext_cloud), for sizing the IIN."""
        return {name: tensor.shape[1] for name, tensor in self.datasets["train"].tensors.items() if name != "label"}

    def train_dataloader(self) -> DataLoader:
        train = self.datasets["train"]
        # A last batch of one would break BatchNorm; drop it whenever there is more than one batch.
        return self._loader(train, shuffle=True, drop_last=len(train) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"])

    def _loader(self, pairs: CachedPairs, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        order = RandomSampler(pairs) if shuffle else SequentialSampler(pairs)
        return DataLoader(pairs, sampler=BatchSampler(order, self.batch_size, drop_last), batch_size=None)
