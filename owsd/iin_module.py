"""The LightningModule that trains the IIN on cached pairs and reports the paper's metrics."""

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from owsd.components.iin import IINInput, InternalInferenceNetwork, iin_features
from owsd.errors import ConfigError, DataError
from owsd.ranges import Count, Decay, Fraction, NonNegativeInt, PositiveNumber, check_arguments

PLAINTEXT_CLOUD = "cloud_plaintext"  # metric prefix of the cloud's own accuracy on unscrambled images


STATE_DIGEST = "owsd_state_sha256"


def state_digest(checkpoint: dict[str, Any]) -> str:
    """sha256 over every tensor of a checkpoint's weights and optimizer state, with where each sits."""
    digest = hashlib.sha256()

    def visit(where: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            digest.update(where.encode())
            digest.update(value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(f"{where}/{key}", value[key])
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(f"{where}/{index}", item)

    visit("", {name: checkpoint.get(name) for name in ("state_dict", "optimizer_states")})
    return digest.hexdigest()


class IINModule(LightningModule):
    """Trains the IIN (paper §4.1: Adam, lr 1e-4 with exponential decay, ≤40 epochs, early stopping).

    Args:
        iin_input: what the IIN sees: `embedding+cloud` (OWSD), or the `embedding` / `cloud` ablations,
            or `embedding+plaintext_cloud` (upper bound: the cloud shown unscrambled images).
        hidden_size: width of the single hidden layer.
        dropout: dropout after the hidden layer.
        lr: Adam learning rate.
        lr_decay: ExponentialLR factor per epoch.
        patience: epochs without a better validation loss before stopping.
        input_dim: the width of the IIN's input (the features `iin_input` joins), taken from the data at setup
            and stored in checkpoints (as are the next four).
        num_classes: the number of private labels.
        cloud_classes_known: whether the private labels are the cloud's classes (all of them or a subset).
        cloud_labels: `cloud_labels[i]` is the cloud's class for IIN class i where the private labels are the
            cloud's, for the plaintext cloud's own accuracy.
        cloud_outputs: the width of the plaintext cloud's probability vector, where the data has one.
        contract: the pipeline's checkpoint contract (key fingerprint, models, generator, cloud, precision),
            taken at setup; every command that loads the checkpoint checks it.
        classes: the names of the IIN's classes, taken at setup; `owsd predict` reports them.
    """

    def __init__(
        self,
        iin_input: IINInput = "embedding+cloud",
        hidden_size: Count = 512,
        dropout: Fraction = 0.5,
        lr: PositiveNumber = 1e-4,
        lr_decay: Decay = 0.95,
        patience: NonNegativeInt = 5,
        input_dim: int | None = None,
        num_classes: int | None = None,
        cloud_classes_known: bool = False,
        cloud_labels: list[int] | None = None,
        cloud_outputs: int | None = None,
        contract: dict[str, Any] | None = None,
        classes: list[str] | None = None,
    ) -> None:
        check_arguments(IINModule.__init__, locals(), "model")
        super().__init__()
        self.save_hyperparameters()
        self.iin_input = iin_input
        self.iin: InternalInferenceNetwork | None = None
        self.metrics = nn.ModuleDict()
        if input_dim is not None and num_classes is not None:
            self._build()

    @property
    def name(self) -> str:
        return self.iin_input

    def setup(self, stage: str) -> None:
        if self.iin is not None:
            return
        data = self.trainer.datamodule
        dims = data.feature_dims
        parts = iin_features({k: torch.zeros(1, d) for k, d in dims.items()}, self.iin_input)
        self.hparams.update(input_dim=parts.shape[1], num_classes=data.num_classes)
        self.hparams.cloud_classes_known = data.cloud_classes_known
        self.hparams.cloud_labels = data.cloud_labels
        self.hparams.cloud_outputs = dims.get("plaintext_cloud")
        self.hparams.contract, self.hparams.classes = data.pipeline.contract, data.class_names
        self._build()

    def _build(self) -> None:
        hp = self.hparams
        self.iin = InternalInferenceNetwork(hp.input_dim, hp.num_classes, hp.hidden_size, hp.dropout)
        for k in (1, 5):
            top_k = min(k, hp.num_classes)
            for target in ("true", "cloud"):
                self.metrics[f"{target}_top{k}"] = MulticlassAccuracy(hp.num_classes, top_k=top_k, average="micro")
            outputs = hp.cloud_outputs or hp.num_classes
            self.metrics[f"plaintext_top{k}"] = MulticlassAccuracy(outputs, top_k=min(k, outputs), average="micro")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[STATE_DIGEST] = state_digest(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Torch reads a checkpoint with a flipped byte in a weight without a word: its digest tells."""
        recorded = checkpoint.get(STATE_DIGEST)  # checkpoints before it have none
        if recorded is not None and recorded != state_digest(checkpoint):
            raise DataError("its weights or optimizer state are not those it was saved with (the file is damaged)")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.iin(iin_features(batch, self.iin_input))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self(batch), batch["label"])
        self.log(f"train/{self.name}/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        logits = self(batch)
        labels = batch["label"]
        size = len(labels)
        self.log(f"{stage}/{self.name}/loss", F.cross_entropy(logits, labels), batch_size=size)
        self._accuracy(stage, self.name, "true", logits, labels)
        cloud_labels = self.hparams.cloud_labels
        if cloud_labels is None and self.hparams.cloud_classes_known:  # a checkpoint from before cloud_labels
            cloud_labels = list(range(self.hparams.num_classes))
        if cloud_labels is not None and "plaintext_cloud" in batch:
            plaintext = batch["plaintext_cloud"]
            if self.hparams.cloud_classes_known:
                # The paper's "Cloud Class." columns: agreement with the cloud's answer for the plaintext image.
                self._accuracy(stage, self.name, "cloud", logits, plaintext.argmax(1), suffix="cloud_class_")
            # Its upper bound: the cloud's own accuracy on the unscrambled images, over all its classes.
            truth = torch.as_tensor(cloud_labels, device=labels.device)[labels]
            self._accuracy(stage, PLAINTEXT_CLOUD, "plaintext", plaintext, truth)

    def _accuracy(
        self, stage: str, prefix: str, target: str, scores: torch.Tensor, labels: torch.Tensor, suffix: str = ""
    ) -> None:
        for k in (1, 5):
            metric = self.metrics[f"{target}_top{k}"]
            metric(scores, labels)
            self.log(f"{stage}/{prefix}/{suffix}top{k}", metric, batch_size=len(labels))

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def configure_callbacks(self) -> list[Callback]:
        """Early stopping and best-checkpoint selection on this IIN's own validation loss.

        They replace any EarlyStopping/ModelCheckpoint given to the Trainer, whose monitor could not know
        the metric names; `trainer.enable_checkpointing: false` still turns checkpointing off. Without
        validation images (`data.split.val_fraction: 0`) the IIN trains for `max_epochs` and its last
        weights are the ones kept.
        """
        interval, every = self.trainer.val_check_interval, self.trainer.check_val_every_n_epoch
        if interval != 1.0 or every != 1:  # patience counts epochs: a check per N batches would tie it to batch size
            raise ConfigError(
                f"trainer.val_check_interval={interval} / check_val_every_n_epoch={every}: the IIN validates once "
                "per epoch (its early stopping counts epochs, whatever the batches per epoch); leave both at 1"
            )
        if not getattr(self.trainer.datamodule, "validates", True):
            last = ModelCheckpoint(filename=f"{self.name}-{{epoch}}", auto_insert_metric_name=False)
            return [last] if self.trainer.checkpoint_callbacks else []
        monitor = f"val/{self.name}/loss"
        callbacks: list[Callback] = [EarlyStopping(monitor=monitor, patience=self.hparams.patience)]
        if self.trainer.checkpoint_callbacks:
            filename = f"{self.name}-{{epoch}}"
            callbacks.append(ModelCheckpoint(monitor=monitor, filename=filename, auto_insert_metric_name=False))
        return callbacks
