"""The LightningDataModule: a split of the pipeline's images, read from its cache, served to the IIN."""

import copy
import math
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from owsd.components.cloud import Cloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.cache import CachedRows
from owsd.data.selection import Split, SplitSettings, split_items
from owsd.data.sources import ImageSource
from owsd.errors import ConfigError
from owsd.pipeline import DEFAULT_PRECOMPUTE_TIMEOUT, Pipeline
from owsd.precompute import fill_cache
from owsd.ranges import Count, NonNegativeInt, PositiveNumber, check_value


class CachedPairs(Dataset):
    """Cached rows as IIN samples; `label` is the IIN class (the index into the chosen labels).

    Features stay in the cache's memory-mapped table; a batch gathers its rows from it, so any number of
    splits of one cache cost the memory of their row indices only."""

    def __init__(self, rows: CachedRows, class_of_label: dict[int, int]) -> None:
        self.rows, self.table = rows.rows, rows.table.fields
        self.labels = torch.tensor([class_of_label[int(label)] for label in rows.labels])
        self.widths = {name: column.shape[1] for name, column in self.table.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | list[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """One sample, or a whole batch for a list of indices (one gather per field, no collation)."""
        rows = self.rows[index]
        batch = {name: self.table[name][rows, : self.widths[name]] for name in self.widths}
        return {**batch, "label": self.labels[index]}

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every sample at once (a copy: for the attacks and the wandb media, not for training)."""
        return self[torch.arange(len(self))]

    def column(self, name: str) -> torch.Tensor:
        """One feature (or `label`) of every sample: a copy of that column only, for the local baselines."""
        return self.labels if name == "label" else self.table[name][self.rows, : self.widths[name]]

    def first_columns(self, embedding: int, cloud: int) -> "CachedPairs":
        """The same samples with only the first `embedding` / `cloud` columns of those features."""
        narrowed = copy.copy(self)
        narrowed.widths = {**self.widths, "embedding": embedding, "cloud": cloud}
        return narrowed


class OWSDDataModule(LightningDataModule):
    """A split of the pipeline's images → cached (embedding, cloud vector, label) → IIN batches.

    Args:
        source: the labelled private images (`Pipeline`, as every setting down to `precompute_timeout`).
        encoders: one or more timm backbones; each embedding is scrambled and sent on its own.
        cloud: the classifier the scrambled images are sent to.
        scrambler: the key file, the generator's size and the defences (`ScramblerSettings`).
        plaintext_baseline: also ask the in-process cloud about the plaintext images, for the upper bound.
        image_size: size the private images are loaded at before each model's own resize.
        cache_dir: where precomputed pairs are kept, one folder per fingerprint.
        precompute_batch_size: images per precompute batch (and per cache shard).
        num_workers: image-decoding worker processes for precompute.
        precision: linked to `trainer.precision`: the encoders' and the cloud's arithmetic.
        precompute_timeout: seconds a process of a distributed precompute waits for the others at a meeting.
        split: the labels, images per label and train/val/test split (`SplitSettings`).
        batch_size: IIN batch size.
    """

    def __init__(
        self,
        source: ImageSource,
        encoders: list[ModelSpec],
        cloud: Cloud,
        scrambler: ScramblerSettings,
        split: SplitSettings = SplitSettings(),
        plaintext_baseline: bool = False,
        image_size: Count = 256,
        cache_dir: Path = Path(".owsd_cache"),
        batch_size: Count = 64,
        precompute_batch_size: Count = 32,
        num_workers: NonNegativeInt = 0,
        precision: str | int | None = None,
        precompute_timeout: PositiveNumber = DEFAULT_PRECOMPUTE_TIMEOUT,
    ) -> None:
        pipeline = Pipeline(
            source, encoders, cloud, scrambler, plaintext_baseline, image_size, cache_dir,
            precompute_batch_size, num_workers, precision, precompute_timeout,
        )  # fmt: skip
        self._init(pipeline, split, batch_size)

    @classmethod
    def of(cls, pipeline: Pipeline, split: SplitSettings, batch_size: Count = 64) -> "OWSDDataModule":
        """A data module over an existing pipeline (another split, another pipeline's defences)."""
        data = cls.__new__(cls)
        data._init(pipeline, split, batch_size)
        return data

    def _init(self, pipeline: Pipeline, split: SplitSettings, batch_size: Count) -> None:
        super().__init__()
        check_value("data.batch_size", batch_size, Count)
        self.pipeline, self.split_settings, self.batch_size = pipeline, split, batch_size
        self.pairs: dict[str, CachedPairs] = {}

    def with_split(self, split: SplitSettings) -> "OWSDDataModule":
        """The same pipeline (and cache) with another split."""
        return OWSDDataModule.of(self.pipeline, split, self.batch_size)

    @cached_property
    def split(self) -> Split:
        """The experiment's images: fixed by the settings, so computed once."""
        source = self.pipeline.source
        split = split_items([label for _, label in source.items], self.split_settings, source.classes)
        self._refuse_the_clouds_training_images(split)
        return split

    def _refuse_the_clouds_training_images(self, split: Split) -> None:
        """The IIN's images must be none the cloud was trained on (use case 1), by image id."""
        source, cloud = self.pipeline.source, self.pipeline.cloud
        seen = cloud.trained_on_images.get(source.provenance or "", frozenset())
        overlap = [image_id for image_id in self.pipeline.image_ids(split.all) if image_id in seen]
        if overlap:
            raise ConfigError(
                f"data.split takes {len(overlap)} images that data.cloud was trained on (e.g. {', '.join(overlap[:3])}): "
                "set data.split.reserved_for_cloud to the cloud_split its `owsd train-cloud` config used"
            )

    @property
    def validates(self) -> bool:
        """Whether there are validation images to stop early on; refuses a split that should and has none."""
        if self.split.val or self.split_settings.val_fraction == 0:
            return bool(self.split.val)
        raise ConfigError(
            f"data.split.val_fraction={self.split_settings.val_fraction} leaves no validation image at this many "
            "training images per label: raise it, or set 0 to train without early stopping"
        )

    @property
    def num_classes(self) -> int:
        return len(self.split.labels)

    @property
    def class_names(self) -> list[str]:
        """Names of the IIN's classes, in its output order."""
        return [self.pipeline.source.classes[label] for label in self.split.labels]

    @property
    def cloud_classes_known(self) -> bool:
        """Whether IIN class i is the cloud's class i, so agreement with the cloud can be measured."""
        source = self.pipeline.source
        return source.labels_are_cloud_classes and self.split.labels == list(range(len(source.classes)))

    @property
    def cloud_labels(self) -> list[int] | None:
        """The cloud's class for each IIN class, where the private labels are the cloud's (all or a subset)."""
        return list(self.split.labels) if self.pipeline.source.labels_are_cloud_classes else None

    def prepare_cache(self, trainer: Trainer) -> None:
        """Precompute the split's images that the cache lacks (a no-op on a hit)."""
        fill_cache(self.pipeline, self.split.all, trainer)

    def setup(self, stage: str | None = None) -> None:
        if self.pairs:
            return
        split = self.split
        for name, positions in (("train", split.train), ("val", split.val), ("test", split.test)):
            self.pairs[name] = self.read_pairs(positions)

    def with_first_encoders(self, count: int) -> "OWSDDataModule":
        """The IIN's data on the first `count` encoders (use case 4), served from this one's cache.

        Encoder i's scrambled image and cloud answer depend only on its own subkey, so they are the same in
        any ensemble that starts with the same encoders: one precompute serves every ensemble size.
        """
        encoders = self.pipeline.encoders
        if not 1 <= count <= len(encoders):
            raise ConfigError(f"an ensemble of {count} encoders, but data.encoders lists {len(encoders)}")
        self.setup()
        embedding = sum(spec.embedding_dim for spec in encoders[:count])
        cloud = self.pairs["train"].widths["cloud"] // len(encoders) * count
        smaller = OWSDDataModule.of(
            self.pipeline.replace(encoders=encoders[:count]), self.split_settings, self.batch_size
        )
        smaller.split = self.split
        smaller.pairs = {name: pairs.first_columns(embedding, cloud) for name, pairs in self.pairs.items()}
        return smaller

    def read_pairs(self, positions: list[int]) -> CachedPairs:
        """The cached rows of these images, labelled with IIN classes (the cache must hold them)."""
        class_of_label = {label: index for index, label in enumerate(self.split.labels)}
        return CachedPairs(self.pipeline.cache.read(self.pipeline.image_ids(positions)), class_of_label)

    @property
    def feature_dims(self) -> dict[str, int]:
        """Width of each cached feature (embedding, cloud, plaintext_cloud), for sizing the IIN."""
        return dict(self.pairs["train"].widths)

    def train_dataloader(self) -> DataLoader:
        """Every training image every epoch, in batches of nearly equal size (never a batch of one beside a
        full one, which would break BatchNorm): 100 images at batch size 64 are two batches of 50."""
        train = self.pairs["train"]
        return DataLoader(train, sampler=EvenBatches(len(train), self.batch_size), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.pairs["val"])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.pairs["test"])

    def _loader(self, pairs: CachedPairs) -> DataLoader:
        return DataLoader(
            pairs, sampler=BatchSampler(SequentialSampler(pairs), self.batch_size, False), batch_size=None
        )


class EvenBatches(Sampler[list[int]]):
    """A shuffled epoch of `size` indices in `ceil(size / batch_size)` batches whose sizes differ by at most one."""

    def __init__(self, size: int, batch_size: int) -> None:
        self.size, self.batches = size, max(1, math.ceil(size / batch_size))

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.size).tolist()
        step, extra = divmod(self.size, self.batches)
        start = 0
        for number in range(self.batches):
            end = start + step + (number < extra)
            yield order[start:end]
            start = end
