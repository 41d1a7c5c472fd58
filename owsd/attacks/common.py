"""What several attacks share: pixels as feature vectors, and a fixed-seed reduction of them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (or float in [0, 255]) images N×C×H×W → float32 N×C×size×size in [0, 1], area-averaged down and
    bilinear up, converted a chunk at a time: 5,000 images at 256² would take ~4 GB as floats at once."""
    chunks = []
    for start in range(0, len(images), 256):
        x = images[start : start + 256].float() / 255.0
        if x.shape[-2:] != (size, size):
            mode = "area" if min(x.shape[-2:]) >= size else "bilinear"
            x = F.interpolate(x, size=(size, size), mode=mode)
        chunks.append(x)
    return torch.cat(chunks) if chunks else images.float()


def pixel_features(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Images → float32 N×(C·size²) in [0, 1] (see `resized`). An adversary works on what arrived;
    downsampling only bounds the attack's cost."""
    return resized(pixels, size).flatten(1)


def reduce(train: np.ndarray, *others: np.ndarray, dims: int, seed: int = 0) -> list[np.ndarray]:
    """Standardise and project onto the top `dims` principal components fitted on `train` only."""
    scaler = StandardScaler().fit(train)
    components = min(dims, train.shape[0], train.shape[1])
    pca = PCA(components, random_state=seed).fit(scaler.transform(train))
    return [pca.transform(scaler.transform(x)) for x in (train, *others)]


def as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
