"""The encoder: a pretrained timm backbone, head removed, that embeds a private image (paper §3)."""

from __future__ import annotations

import torch
from torch import nn

from owsd.components.preprocess import Preprocess
from owsd.components.timm_models import ModelSpec


class Encoder(nn.Module):
    """uint8 images N×3×H×W → pooled embeddings N×D, with the backbone's own preprocessing."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        backbone = spec.build()
        backbone.reset_classifier(0)
        self.name = spec.name
        self.preprocess = Preprocess.for_model(backbone, spec.input_size)
        self.backbone = backbone.requires_grad_(False).eval()
        self.embedding_dim: int = backbone.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocess(images))


def classifier_head(spec: ModelSpec) -> nn.Module:
    """The encoder's own classifier, which maps its pooled embedding to the classes it was trained on."""
    return spec.build().get_classifier().requires_grad_(False).eval()
