"""The data module of `owsd train-cloud`: a source's `cloud_split`, loaded once, served to the cloud's classifier."""

import logging
from functools import cached_property

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

from owsd.components.preprocess import Preprocess
from owsd.data.selection import CloudSplit, Split
from owsd.data.sources import ImageSource
from owsd.ranges import Count, check_arguments

log = logging.getLogger(__name__)


class CloudTrainingData(LightningDataModule):
    """The cloud's training images as 0–1 floats at the classifier's input size.

    Images are loaded at `image_size` and resized as a cloud resizes what it is sent, so the classifier trains on
    what it will see of an unscrambled image.

    Args:
        source: the labelled images (the cloud's share of them is `cloud_split`).
        cloud_split: which of them the cloud is trained on.
        image_size: the side images are loaded at, as `data.image_size` of the private pipeline.
        input_size: the classifier's input side (linked to `model.input_size`).
        batch_size: training batch size.
    """

    def __init__(
        self,
        source: ImageSource,
        cloud_split: CloudSplit = CloudSplit(),
        image_size: Count = 256,
        input_size: Count = 32,
        batch_size: Count = 64,
    ) -> None:
        check_arguments(CloudTrainingData.__init__, locals(), "data")
        super().__init__()
        self.source, self.cloud_split = source, cloud_split
        self.image_size, self.input_size, self.batch_size = image_size, input_size, batch_size
        self.images: dict[str, TensorDataset] = {}

    @cached_property
    def split(self) -> Split:
        return self.cloud_split.draw([label for _, label in self.source.items], self.source.classes)

    @property
    def classes(self) -> list[str]:
        return [self.source.classes[label] for label in self.split.labels]

    @property
    def num_classes(self) -> int:
        return len(self.split.labels)

    @property
    def validates(self) -> bool:
        return bool(self.split.val)

    @property
    def image_ids(self) -> list[str]:
        """Every image the classifier sees (training and validation): what its checkpoint records."""
        items = self.source.items
        return [items[position][0] for position in sorted(self.split.train + self.split.val)]

    def setup(self, stage: str | None = None) -> None:
        if self.images:
            return
        log.info("loading %d training and %d validation images", len(self.split.train), len(self.split.val))
        resize = Preprocess(self.input_size, 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # to 0–1, no normalising
        class_of = {label: index for index, label in enumerate(self.split.labels)}
        items = self.source.items
        for name, positions in (("train", self.split.train), ("val", self.split.val)):
            pixels = [resize(self.source.load(p, self.image_size)[None])[0] for p in positions]
            inputs = torch.stack(pixels) if pixels else torch.zeros(0, 3, self.input_size, self.input_size)
            labels = torch.tensor([class_of[items[p][1]] for p in positions], dtype=torch.long)
            self.images[name] = TensorDataset(inputs, labels)

    def train_dataloader(self) -> DataLoader:
        # A last batch of one would break BatchNorm: drop it only then.
        drop = len(self.images["train"]) % self.batch_size == 1
        return DataLoader(self.images["train"], batch_size=self.batch_size, shuffle=True, drop_last=drop)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.images["val"], batch_size=256)
