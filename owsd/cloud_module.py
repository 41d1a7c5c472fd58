"""The LightningModule of `owsd train-cloud`: trains the cloud's classifier, as the paper trained its CIFAR clouds."""

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from timm.data import resolve_data_config

from owsd.components.timm_models import RANDOM, ModelSpec
from owsd.components.trained_cloud import SMALL_CNN, build_classifier
from owsd.ranges import Count, NonNegativeInt, NonNegativeNumber, PositiveNumber, check_arguments

SMALL_CNN_NORMALISATION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class CloudClassifierModule(LightningModule):
    """A classifier on 0–1 images at `input_size`, normalised inside, trained with cross-entropy and AdamW.

    Args:
        architecture: `small_cnn` or any timm model name (a fresh head with the data's classes).
        weights: for a timm model, `ModelSpec` weights to start from (`pretrained`, `pypi`, a file); none: random.
        width: the small CNN's first-block channels.
        input_size: the classifier's input side; images are resized to it (linked to `data.input_size`).
        mean / std: per-channel normalisation of 0–1 RGB; by default the timm model's own, or 0.5 for the small CNN.
        lr / weight_decay: AdamW's.
        patience: epochs without a better validation loss before stopping.
        num_classes / classes: taken from the data at setup.
    """

    def __init__(
        self,
        architecture: str = SMALL_CNN,
        weights: str | None = None,
        width: Count = 32,
        input_size: Count = 32,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        lr: PositiveNumber = 1e-3,
        weight_decay: NonNegativeNumber = 1e-4,
        patience: NonNegativeInt = 3,
        num_classes: int | None = None,
        classes: list[str] | None = None,
    ) -> None:
        check_arguments(CloudClassifierModule.__init__, locals(), "model")
        super().__init__()
        if architecture != SMALL_CNN:
            ModelSpec(architecture, weights or RANDOM)  # an unknown name or missing weights file fails before any work
        self.save_hyperparameters()
        self.classifier: torch.nn.Module | None = None

    def setup(self, stage: str) -> None:
        if self.classifier is not None:
            return
        data = self.trainer.datamodule
        hp = self.hparams
        hp.update(num_classes=data.num_classes, classes=data.classes)
        self.classifier = build_classifier(hp.architecture, hp.num_classes, hp.width, hp.weights)
        if hp.mean is None or hp.std is None:
            if hp.architecture == SMALL_CNN:
                mean, std = SMALL_CNN_NORMALISATION
            else:
                config = resolve_data_config({}, model=self.classifier)
                mean, std = config["mean"], config["std"]
            hp.update(mean=tuple(mean), std=tuple(std))
        self.register_buffer("mean", torch.tensor(hp.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(hp.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier((images - self.mean) / self.std)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss, on_epoch=True, on_step=False, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("val/loss", F.cross_entropy(logits, labels), batch_size=len(labels), prog_bar=True)
        accuracy = (logits.argmax(1) == labels).float().mean()
        self.log("val/top1", accuracy, batch_size=len(labels), prog_bar=True)

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def configure_callbacks(self) -> list[Callback]:
        """Early stopping and the best checkpoint on the validation loss; without validation images, the last."""
        if not self.trainer.datamodule.validates:
            return [ModelCheckpoint(filename="cloud-{epoch}")] if self.trainer.checkpoint_callbacks else []
        callbacks: list[Callback] = [EarlyStopping(monitor="val/loss", patience=self.hparams.patience)]
        if self.trainer.checkpoint_callbacks:
            name = "cloud-{epoch}"
            callbacks.append(ModelCheckpoint(monitor="val/loss", filename=name, auto_insert_metric_name=False))
        return callbacks
