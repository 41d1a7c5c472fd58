"""Synthetic labelled images that cost what real ones cost to load: benchmarks without a dataset.

A throughput figure is only honest if loading an image means decoding a JPEG, as it does for a folder of
photographs. `SyntheticSource` therefore keeps a small pool of encoded JPEGs (random smooth textures tinted
by class, fixed by a seed) and decodes one with PIL on every `load`; no file or download is needed.
"""

from __future__ import annotations

import io
from functools import cached_property
from typing import Any

import numpy as np
import torch
from PIL import Image

from owsd.data.sources import ImageSource, square_rgb
from owsd.errors import ConfigError

POOL_IMAGES = 64  # distinct JPEGs; more would only cost start-up time, since every load decodes anyway
_GRID = 8  # side of the coarse noise that is upsampled into a smooth texture
_JPEG_QUALITY = 90


class SyntheticSource(ImageSource):
    """N deterministic random-texture JPEGs: item i is `synthetic/{i}` with label `i % classes`.

    Args:
        images: N, how many items the source lists.
        classes: how many labels (`class0`, `class1`, ...).
        image_size: side of the stored square JPEG, i.e. how much there is to decode.
        seed: fixes every texture, so two sources with the same arguments load the same bytes.
    """

    def __init__(self, images: int, classes: int = 10, image_size: int = 64, seed: int = 0) -> None:
        for setting, value, least in (("images", images, 1), ("classes", classes, 1), ("image_size", image_size, 8)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"SyntheticSource {setting} must be an integer ≥ {least}, got {value!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"SyntheticSource seed must be a non-negative integer, got {seed!r}")
        self.images, self.num_classes, self.image_size, self.seed = images, classes, image_size, seed

    @property
    def classes(self) -> list[str]:
        return [f"class{label}" for label in range(self.num_classes)]

    @cached_property
    def items(self) -> list[tuple[str, int]]:
        return [(f"synthetic/{i}", i % self.num_classes) for i in range(self.images)]

    @cached_property
    def _pool(self) -> list[bytes]:
        """The encoded JPEGs, built on first use; a multiple of `classes` long, so entry i % pool has item i's label."""
        size = min(self.images, self.num_classes * max(1, POOL_IMAGES // self.num_classes))
        return [self._jpeg(entry) for entry in range(size)]

    def _jpeg(self, entry: int) -> bytes:
        """A smooth texture tinted by its class colour, plus fine grain so the JPEG is not trivially cheap."""
        label = entry % self.num_classes
        colour = np.random.default_rng([self.seed, 1, label]).uniform(0, 255, 3)
        rng = np.random.default_rng([self.seed, 2, entry])
        coarse = Image.fromarray(rng.uniform(0, 255, (_GRID, _GRID, 3)).astype(np.uint8))
        texture = np.asarray(coarse.resize((self.image_size,) * 2, Image.Resampling.BICUBIC), dtype=np.float32)
        grain = rng.normal(0, 8, texture.shape)
        pixels = np.clip(0.6 * texture + 0.4 * colour + grain, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=_JPEG_QUALITY)
        return buffer.getvalue()

    def load(self, index: int, size: int) -> torch.Tensor:
        if not 0 <= index < self.images:
            raise IndexError(f"SyntheticSource has {self.images} images, not {index + 1}")
        pool = self._pool
        with Image.open(io.BytesIO(pool[index % len(pool)])) as image:
            return square_rgb(image, size)

    def _location(self) -> dict[str, Any]:
        return {"images": self.images, "classes": self.num_classes, "image_size": self.image_size, "seed": self.seed}
