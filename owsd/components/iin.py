"""The internal inference network: a small dense net that maps (embedding, cloud vector) to the label."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

# What the IIN sees. The cloud vector is a function of the embedding, so whether it helps is measured:
# `embedding+cloud` is the paper's OWSD; `embedding` and `cloud` are ablations; `embedding+plaintext_cloud`
# is the evaluation-only upper bound in which the cloud was shown the unscrambled image.
IINInput = Literal["embedding+cloud", "embedding", "cloud", "embedding+plaintext_cloud"]
_PARTS = {name: tuple(name.split("+")) for name in get_args(IINInput)}


class InternalInferenceNetwork(nn.Module):
    """Linear → BatchNorm → ReLU → Dropout → Linear (paper §4.1); returns logits."""

    def __init__(self, input_dim: int, num_classes: int, hidden_size: int = 512, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden_size),
            nn.BatchNorm1d(hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def iin_features(batch: dict[str, torch.Tensor], iin_input: IINInput) -> torch.Tensor:
    """Concatenate the parts of a cached batch that `iin_input` lets the IIN see."""
    if iin_input not in _PARTS:
        raise ValueError(f"iin_input must be one of {list(_PARTS)}, got {iin_input!r}")
    return torch.cat([batch[part] for part in _PARTS[iin_input]], dim=1)
