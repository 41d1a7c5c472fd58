"""A model's own eval preprocessing, applied to uint8 image batches inside the network.

Doing it on tensors (not PIL) lets the encoder and the cloud each resize the same batch to their own
input size, so an ensemble and its cloud share one loaded image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.data import resolve_data_config
from torch import nn


class Preprocess(nn.Module):
    """uint8 N×3×H×W → the float tensor a timm model expects (resize, centre crop, normalise)."""

    def __init__(self, input_size: int, crop_pct: float, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.input_size = input_size
        self.scale_size = math.floor(input_size / crop_pct)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)

    @classmethod
    def for_model(cls, model: nn.Module, input_size: int | None = None) -> Preprocess:
        """The model's pretrained preprocessing; `input_size` replaces its side (the crop fraction stays)."""
        config = resolve_data_config({}, model=model)
        side = config["input_size"][-1] if input_size is None else input_size
        return cls(side, config["crop_pct"], config["mean"], config["std"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise TypeError(f"expected uint8 images N×3×H×W, got {images.dtype} {tuple(images.shape)}")
        height, width = images.shape[-2:]
        scale = self.scale_size / min(height, width)
        size = (round(height * scale), round(width * scale))
        x = images.float()
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 255)
        top, left = (size[0] - self.input_size) // 2, (size[1] - self.input_size) // 2
        x = x[..., top : top + self.input_size, left : left + self.input_size]
        return (x - self.mean) / self.std
