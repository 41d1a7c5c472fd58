"""Private inference on new images: embed, scramble, ask the cloud, run a trained IIN.

The same path as precompute (the pipeline's encoders, scramblers and cloud client), but for images that
have no place in the cache, and only for an IIN trained on exactly this pipeline: every command that
loads a checkpoint checks its contract here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from owsd.errors import ConfigError, first_line
from owsd.iin_module import IINModule
from owsd.pipeline import Pipeline
from owsd.precompute_batch import embed_and_ask


def load_checkpoint(path: Path) -> IINModule:
    """An IIN checkpoint of `owsd fit`, on the CPU; one clear error for anything else."""
    if not path.is_file():
        raise ConfigError(f"--ckpt_path {path} does not exist")
    try:
        return IINModule.load_from_checkpoint(path, map_location="cpu")
    except Exception as error:  # noqa: BLE001  (torch and Lightning raise many kinds for a foreign file)
        raise ConfigError(f"--ckpt_path {path} is not an IIN checkpoint of `owsd fit` ({first_line(error)})") from None


def check_contract(model: IINModule, pipeline: Pipeline, checkpoint: str | Path) -> None:
    """Refuse an IIN trained for another pipeline: its inputs would mean something else."""
    trained: dict[str, Any] | None = model.hparams.get("contract")
    if trained is None:
        raise ConfigError(f"checkpoint {checkpoint} does not record the pipeline it was trained for (retrain it)")
    difference = pipeline.contract_difference(trained, "the checkpoint")
    if difference is not None:
        raise ConfigError(f"checkpoint {checkpoint} was trained for another {difference}")


class Predictor:
    """Probabilities over the IIN's classes for batches of new uint8 images (N×3×S×S at `data.image_size`),
    computed on `device` at the pipeline's precision; `image_ids` name those that will be sent, checked against
    the key's budget before the first is (those sent before count as resends)."""

    def __init__(
        self, pipeline: Pipeline, model: IINModule, image_ids: list[str], device: torch.device | str = "cpu"
    ) -> None:
        if model.iin_input == "embedding+plaintext_cloud":
            raise ConfigError("an IIN on the plaintext cloud is an evaluation bound: plaintext never goes to a cloud")
        if pipeline.scrambler.defences.rotate_every is not None:
            raise ConfigError("owsd predict does not rotate keys: new images have no place in the source's key order")
        self.pipeline, self.device = pipeline, torch.device(device)
        self.model = model.eval().to(self.device)
        self.encoders = [encoder.to(self.device) for encoder in pipeline.build_encoders()]
        self.uses_cloud = "cloud" in model.iin_input.split("+")
        self.scramblers = pipeline.scramblers()
        # An embedding-only IIN sends nothing; otherwise every image sent is in the key's ledger, within budget.
        cloud = pipeline.open_cloud("predict", image_ids) if self.uses_cloud else None
        self.cloud = cloud.to(self.device) if cloud is not None else None
        self.sent = 0

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the cloud's connection."""
        if self.cloud is not None:
            self.cloud.close()

    def __call__(self, images: torch.Tensor, image_ids: list[str]) -> torch.Tensor:
        """uint8 images → probabilities, on the host."""
        return self.on_device(images, image_ids).cpu()

    @torch.inference_mode()
    def on_device(self, images: torch.Tensor, image_ids: list[str]) -> torch.Tensor:
        """uint8 images (anywhere) → probabilities on the predictor's device."""
        images = images.to(self.device, non_blocking=True)
        with self.pipeline.autocast(self.device):
            batch = embed_and_ask(self.encoders, self.scramblers, self.cloud, images, image_ids, [0] * len(image_ids))
        self.sent += len(image_ids) * len(self.encoders) if self.cloud is not None else 0
        features = {name: values.float() for name, values in batch.items()}
        return torch.softmax(self.model(features), dim=1)
