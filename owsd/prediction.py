"""Private inference on new images: embed, scramble, ask the cloud, run a trained IIN.

The same path as precompute (encoders, the key's scramblers, the data module's cloud client), but for
images that have no place in the cache, and only for an IIN trained on exactly this pipeline.
"""

from __future__ import annotations

from typing import Any

import torch

from owsd.components.encoder import Encoder
from owsd.datamodule import OWSDDataModule
from owsd.errors import ConfigError
from owsd.iin_module import IINModule
from owsd.precompute import embed_and_ask

WHAT_DIFFERS = {
    "key_fingerprint": "key (data.scrambler.key_file)",
    "encoders": "encoders (data.encoders)",
    "cloud": "cloud (data.cloud)",
    "generator": "generator (data.scrambler.size/channels)",
    "image_size": "image size (data.image_size)",
    "defences": "defences (data.scrambler.defences)",
}


def check_pipeline(trained: dict[str, Any] | None, current: dict[str, Any], checkpoint: str) -> None:
    """Refuse an IIN trained for another pipeline: its inputs would mean something else."""
    if trained is None:
        raise ConfigError(f"checkpoint {checkpoint} does not record the pipeline it was trained for (retrain it)")
    for part, name in WHAT_DIFFERS.items():
        if trained.get(part) != current.get(part):
            raise ConfigError(
                f"checkpoint {checkpoint} was trained for another {name}: {trained.get(part)} in the checkpoint, "
                f"{current.get(part)} in the config"
            )


class Predictor:
    """Probabilities over the IIN's classes for batches of new uint8 images (N×3×S×S at `data.image_size`);
    `images` is how many will be sent, checked against the key's budget before the first is."""

    def __init__(self, data: OWSDDataModule, model: IINModule, images: int) -> None:
        if model.iin_input == "embedding+plaintext_cloud":
            raise ConfigError("an IIN on the plaintext cloud is an evaluation bound: plaintext never goes to a cloud")
        if data.scrambler.defences.rotate_every is not None:
            raise ConfigError("owsd predict does not rotate keys: new images have no place in the source's key order")
        self.data, self.model = data, model.eval()
        self.encoders = [Encoder(spec) for spec in data.encoders]
        self.uses_cloud = "cloud" in model.iin_input.split("+")
        self.scramblers = data.scramblers(data.key(), [encoder.embedding_dim for encoder in self.encoders])
        # An embedding-only IIN sends nothing; otherwise every image sent is in the key's ledger, within budget.
        self.cloud = data.open_cloud("predict", upcoming=images * len(self.encoders)) if self.uses_cloud else None
        self.sent = 0

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, image_ids: list[str]) -> torch.Tensor:
        batch = embed_and_ask(self.encoders, self.scramblers, self.cloud, images, image_ids, [0] * len(image_ids))
        self.sent += len(image_ids) * len(self.encoders) if self.cloud is not None else 0
        return torch.softmax(self.model(batch), dim=1)
