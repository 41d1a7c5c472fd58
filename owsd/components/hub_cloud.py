"""A classifier from `torch.hub` or a local checkpoint as an in-process cloud: the paper's CIFAR clouds.

CIFAR-10/100 classifiers are not in timm. The published VGG16s of `chenyaofo/pytorch-cifar-models`
(`cifar10_vgg16_bn`, `cifar100_vgg16_bn`) stand in for the paper's VGG16 clouds; a TorchScript file or a
state_dict for a hub architecture serves a cloud trained elsewhere. Like every `Cloud`, it is a cheap
description: nothing is downloaded or loaded until `open()`.
"""

from __future__ import annotations

import hashlib
import re
import urllib.request
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from owsd.components.cloud import InProcessCloud
from owsd.components.preprocess import Preprocess
from owsd.components.trained_cloud import load_classifier, read_cloud_checkpoint
from owsd.errors import ConfigError, DataError

# Pinned: a branch can move, and the cache and every checkpoint are named by the code and weights they used.
CIFAR_MODELS = "chenyaofo/pytorch-cifar-models:786c16252c0fc58ee9adac063f8337cc4a7a497a"
COMMIT = re.compile(r"[0-9a-f]{40}")
# The normalisation their training logs record (logs branch, logs/<dataset>/<model>/default.log), at 32×32.
CIFAR_NORMALISATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.507, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761)),
}


def resolve_commit(repo: str) -> str:
    """`owner/name[:ref]` → the commit the ref names today (GitHub's API); a pinned commit is returned as is."""
    name, _, ref = repo.partition(":")
    if COMMIT.fullmatch(ref):
        return ref
    url = f"https://api.github.com/repos/{name}/commits/{ref or 'HEAD'}"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.github.sha"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            commit = response.read().decode(errors="replace").strip()
    except OSError as error:
        raise DataError(
            f"cannot resolve torch.hub repo {repo} to a commit ({url}: {error}); pin one: {name}:<commit>"
        ) from None
    if not COMMIT.fullmatch(commit):
        raise DataError(f"GitHub named no commit for torch.hub repo {repo} ({url} answered {commit[:60]!r})")
    return commit


def _cifar_dataset(model: str | None) -> str | None:
    """`cifar100` for `cifar100_vgg16_bn`: the dataset a chenyaofo-style entry point was trained on."""
    prefix = (model or "").split("_", 1)[0]
    return prefix if prefix in CIFAR_NORMALISATION else None


class HubCloud(InProcessCloud):
    """A `torch.hub` classifier, or a local checkpoint, run in-process with its own resize and normalisation.

    Args:
        repo: hub repository (`owner/name[:ref]` on GitHub, or a folder holding `hubconf.py` with `source: local`);
            a ref that is not a commit (a branch, a tag, none) is resolved to the commit it names when the cloud is
            first identified, and that commit is what is loaded and recorded.
        model: the repository's entry point, e.g. `cifar100_vgg16_bn`; called with `pretrained=True`.
        checkpoint: a checkpoint of `owsd train-cloud` (needs no repo: it names its architecture, input size,
            normalisation, classes and training images), a TorchScript file (needs no repo), or a state_dict for
            `model`'s architecture (built with `pretrained=False`); replaces the hub's weights.
        source: `github` (downloads the code and weights once; the config names the repo, so it is trusted)
            or `local`.
        mean / std: per-channel normalisation of 0–1 RGB; for `cifar10_*` / `cifar100_*` entry points the
            values their training used are the default.
        input_size: the classifier's input side (32 by default, as for CIFAR models).
        trained_on: the dataset splits the weights were trained on (e.g. `cifar100:train`); for `cifar10_*` /
            `cifar100_*` entry points, that dataset's train split.
    """

    def __init__(
        self,
        repo: str | None = CIFAR_MODELS,
        model: str | None = None,
        checkpoint: str | None = None,
        source: Literal["github", "local"] = "github",
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        input_size: int | None = None,
        trained_on: list[str] | None = None,
    ) -> None:
        self.repo, self.model, self.source = repo, model, source
        self.checkpoint = Path(checkpoint) if checkpoint else None
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise ConfigError(
                f"checkpoint {self.checkpoint} for HubCloud does not exist (`owsd train-cloud` writes one)"
            )
        self.trained = read_cloud_checkpoint(self.checkpoint) if self.checkpoint is not None else None
        if self.trained is not None:
            self.repo = self.model = None  # it names its own architecture
            mean, std, input_size = self._trained_settings(mean, std, input_size)
        elif self.checkpoint is None and not (repo and model):
            raise ConfigError("HubCloud needs `repo` and `model`, or a `checkpoint` file")
        self.input_size = input_size or 32
        if source == "local" and repo and not (Path(repo) / "hubconf.py").is_file():
            raise ConfigError(f"HubCloud repo {repo} (source: local) is not a folder holding hubconf.py")
        dataset = _cifar_dataset(model)
        if mean is None or std is None:
            if dataset is None:
                raise ConfigError(f"HubCloud model {model or self.checkpoint}: give its input `mean` and `std`")
            mean, std = CIFAR_NORMALISATION[dataset]
        self.mean, self.std = tuple(mean), tuple(std)
        if trained_on is None:
            trained_on = [f"{dataset}:train"] if dataset else []
        self.trained_on = tuple(trained_on)
        if self.trained is not None:
            self.classes = tuple(self.trained["classes"])

    def _trained_settings(self, mean: tuple | None, std: tuple | None, input_size: int | None) -> tuple:
        """A trained checkpoint's own input size and normalisation; the config may repeat them, not change them."""
        own = {"mean": tuple(self.trained["mean"]), "std": tuple(self.trained["std"])}
        own["input_size"] = self.trained["input_size"]
        for name, given in (("mean", mean), ("std", std), ("input_size", input_size)):
            if given is not None and (tuple(given) if name != "input_size" else given) != own[name]:
                raise ConfigError(
                    f"HubCloud {name}={given} but checkpoint {self.checkpoint} was trained with {own[name]}: leave it unset"
                )
        return own["mean"], own["std"], own["input_size"]

    @property
    def trained_on_images(self) -> dict[str, frozenset[str]]:
        images = (self.trained or {}).get("trained_on_images", {})
        return {provenance: frozenset(ids) for provenance, ids in images.items()}

    @property
    def cloud_id(self) -> str:
        """The weights (a checkpoint's hash, a local hubconf's hash, or the hub repo and entry point) and the
        preprocessing: both decide the numbers returned."""
        if self.checkpoint is not None:
            kind = self.trained["architecture"] if self.trained is not None else self.model or "torchscript"
            weights = f"{kind}-sha256-{_sha256(self.checkpoint)[:16]}"
        elif self.source == "local":
            weights = f"{self.model}-hubconf-sha256-{_sha256(Path(self.repo) / 'hubconf.py')[:16]}"
        else:
            weights = f"{self.github_repo}-{self.model}-pretrained"
        preprocessing = hashlib.sha256(repr((self.input_size, self.mean, self.std)).encode()).hexdigest()[:8]
        return f"hub-{weights}-pre{preprocessing}"

    @cached_property
    def github_repo(self) -> str:
        """`owner/name:<commit>`: the repo at the commit its ref names (asked of GitHub once, unless pinned)."""
        return f"{self.repo.partition(':')[0]}:{resolve_commit(self.repo)}"

    def build(self) -> tuple[nn.Module, nn.Module]:
        classifier = self._load_checkpoint() if self.checkpoint is not None else self._load_hub(pretrained=True)
        return classifier.eval(), Preprocess(self.input_size, 1.0, self.mean, self.std)

    def _load_hub(self, pretrained: bool) -> nn.Module:
        repo = self.github_repo if self.source == "github" else self.repo
        where = f"{repo} ({self.source})"
        try:
            model = torch.hub.load(
                repo, self.model, source=self.source, pretrained=pretrained, trust_repo=True, verbose=False
            )
        except Exception as error:  # network, missing repo, broken hubconf: all reported the same way
            if f"Cannot find callable {self.model} in hubconf" in str(error):
                raise ConfigError(f"HubCloud model {self.model!r} is not an entry point of repo {where}") from None
            raise DataError(f"cannot load {self.model!r} from torch.hub repo {where}: {error}") from None
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{self.model!r} of {where} returned a {type(model).__name__}, not a torch module")
        return model

    def _load_checkpoint(self) -> nn.Module:
        """A checkpoint of `owsd train-cloud`; else TorchScript when the file is one; else a state_dict for the hub
        architecture."""
        if self.trained is not None:
            return load_classifier(self.checkpoint, self.trained)
        try:  # wrapped: a ScriptModule itself refuses `requires_grad_`
            return nn.Sequential(torch.jit.load(str(self.checkpoint), map_location="cpu"))
        except RuntimeError:
            pass  # not TorchScript: a state_dict
        if not (self.repo and self.model):
            raise ConfigError(f"checkpoint {self.checkpoint} is not TorchScript; a state_dict needs `repo` and `model`")
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ConfigError(
                f"checkpoint {self.checkpoint} is neither TorchScript nor a state_dict: {error}"
            ) from None
        model = self._load_hub(pretrained=False)
        try:
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except (RuntimeError, AttributeError, TypeError) as error:
            raise ConfigError(f"checkpoint {self.checkpoint} does not fit {self.model!r}: {error}") from None
        return model


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
