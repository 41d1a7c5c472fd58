"""T1: can the adversary tell that two submissions show the same (possibly lightly changed) image?

If the scrambled images of one picture resemble each other more than those of two pictures do, the cloud can
link a person's submissions even without knowing what they show. `CHANGES` are the light edits the suite makes
to a plaintext image before it is encoded and scrambled a second time.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.preprocessing import StandardScaler

from owsd.attacks.common import as_numpy

_CROP_FRACTION = 0.1  # of each side, split between its two borders
_JPEG_QUALITY = 75
_RESIZE_FACTOR = 0.75


def match_rate(features_a: torch.Tensor, features_b: torch.Tensor, false_match_rate: float = 0.01) -> dict[str, float]:
    """Row i of `a` and of `b` show the same image; returns {"match_rate", "threshold"} at a fixed false match rate.

    Pairs are scored by cosine similarity of standardised features; the threshold is the score that only
    `false_match_rate` of the impostor pairs (i ≠ j) exceed, and "match_rate" is the fraction of genuine
    pairs (i, i) above it. A chance-level scrambler gives a match rate near `false_match_rate`.
    """
    a, b = as_numpy(features_a).astype("float64"), as_numpy(features_b).astype("float64")
    if a.shape != b.shape or a.ndim != 2 or len(a) < 2:
        raise ValueError(f"need two N×D feature sets of one shape with N ≥ 2, got {a.shape} and {b.shape}")
    if not 0 < false_match_rate < 1:
        raise ValueError(f"false_match_rate must be in (0, 1), got {false_match_rate}")
    scaler = StandardScaler().fit(np.concatenate([a, b]))
    a, b = (_unit_rows(scaler.transform(x)) for x in (a, b))
    scores = (a @ b.T).astype("float32")  # N² scores: float32 keeps 5,000 images at 100 MB
    genuine = np.diagonal(scores).copy()
    impostor = scores[~np.eye(len(scores), dtype=bool)]
    allowed = int(false_match_rate * impostor.size)  # impostor pairs that may score above the threshold
    rank = impostor.size - 1 - allowed
    threshold = float(np.partition(impostor, rank)[rank])
    return {"match_rate": float((genuine > threshold).mean()), "threshold": threshold}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of uint8 images, done in uint8 (torch's fast path; no N×3×H×W float copy)."""
    return F.interpolate(images.contiguous(), size=size, mode="bilinear", align_corners=False, antialias=True)


def _crop(images: torch.Tensor) -> torch.Tensor:
    """Cut 5% off every border (10% of each side) and resize back: a slightly different framing."""
    h, w = images.shape[-2:]
    dy, dx = max(1, round(h * _CROP_FRACTION / 2)), max(1, round(w * _CROP_FRACTION / 2))
    return _resize(images[..., dy : h - dy, dx : w - dx], (h, w))


def _jpeg(images: torch.Tensor) -> torch.Tensor:
    """Re-encode each image as a quality-75 JPEG, as sharing an image often does."""
    return torch.stack([_jpeg_one(image) for image in images])


def _jpeg_one(image: torch.Tensor) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    decoded = np.array(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(decoded).permute(2, 0, 1)


def _downsize(images: torch.Tensor) -> torch.Tensor:
    """Shrink to 75% and enlarge back (bilinear): the detail a thumbnail loses."""
    h, w = images.shape[-2:]
    small = _resize(images, (round(h * _RESIZE_FACTOR), round(w * _RESIZE_FACTOR)))
    return _resize(small, (h, w))


CHANGES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "same": lambda images: images,
    "crop": _crop,
    "jpeg": _jpeg,
    "resize": _downsize,
}
