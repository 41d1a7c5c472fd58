"""What a wandb run gets beyond Lightning's metrics: the whole config, scrambled test images, a confusion matrix.

Lightning logs only the model's hyperparameters, so a run on the dashboard could not be told apart by its
data, encoders or split; this callback logs the LightningCLI config, flattened to the dotted names a sweep
uses (`model.hidden_size`). The config holds the key file's path, never the key. The images are the
scrambled bytes the cloud was sent, regenerated from cached test embeddings with the data module's own
scramblers; the private originals are never logged.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torchvision.utils import make_grid

from owsd.datamodule import OWSDDataModule
from owsd.pipeline import Pipeline


def wandb_logger(trainer: Trainer) -> WandbLogger | None:
    """The trainer's WandbLogger, if it has one."""
    return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)


def finish_wandb_run() -> None:
    """End the process's wandb run, if any, and wait until its log is complete on disk (or uploaded).

    Lightning leaves the run open, and wandb's own exit hook may still be writing when the process is gone,
    so a `wandb sync` or a sweep reading the offline log right after could see a partial run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"model": {"hidden_size": 512}}` → `{"model.hidden_size": 512}`: the names sweep parameters use."""
    flat: dict[str, Any] = {}
    for name, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


class WandbRunMedia(Callback):
    """Logs `config` once, and after each test a grid of scrambled test images and the confusion matrix.

    Args:
        config: the run's config as plain data (e.g. the LightningCLI config dumped and loaded as YAML).
        images: how many test images to show, each as scrambled by every encoder's generator.
    """

    def __init__(self, config: dict[str, Any], images: int = 8) -> None:
        self.config, self.images = flat_config(config), images
        self._config_logged = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        logger = wandb_logger(trainer)
        if logger is not None and not self._config_logged:
            logger.log_hyperparams(self.config)
            self._config_logged = True

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger, data = wandb_logger(trainer), trainer.datamodule
        if logger is None or not trainer.is_global_zero or not isinstance(data, OWSDDataModule):
            return
        import wandb  # only needed (and only installed) when a WandbLogger is configured

        names = [str(name) for name in data.class_names]
        test = data.pairs["test"].tensors
        with torch.no_grad():
            predictions = pl_module({k: v.to(pl_module.device) for k, v in test.items()}).argmax(1).cpu()
        positions = data.split.test[: self.images]
        logger.experiment.log(
            {
                "test/scrambled_images": wandb.Image(
                    scrambled_grid(data.pipeline, positions, test["embedding"][: len(positions)]),
                    caption=f"what the cloud was sent for the first {self.images} test images, one row per encoder",
                ),
                f"test/{pl_module.name}/confusion_matrix": wandb.plot.confusion_matrix(
                    y_true=test["label"].tolist(), preds=predictions.tolist(), class_names=names
                ),
            }
        )


def scrambled_grid(pipeline: Pipeline, positions: list[int], embeddings: torch.Tensor) -> Any:
    """H×W×3 uint8 array: the images at these source positions, from their cached embeddings, as scrambled by
    each encoder's scrambler (one row each)."""
    image_ids = pipeline.image_ids(positions)
    scramblers = pipeline.scramblers()
    dims = [spec.embedding_dim for spec in pipeline.encoders]
    parts = embeddings.split(dims, dim=1)  # the cache concatenates the encoders' embeddings
    pixels = [scrambler.scramble(part, image_ids, positions).pixels for scrambler, part in zip(scramblers, parts)]
    return make_grid(torch.cat(pixels), nrow=len(positions)).permute(1, 2, 0).numpy()
