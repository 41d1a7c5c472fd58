"""A small convolutional classifier: the cloud `owsd train-cloud` trains in minutes on a CPU (digits at 32×32)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three conv–BatchNorm–ReLU–max-pool blocks, global average pooling, a linear head; any input side ≥ 8.

    Args:
        num_classes: outputs (logits).
        width: channels of the first block, doubled in each of the next two.
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width):
            blocks += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
