"""Clouds with a twist, for tests: a spy, a slow one (to kill mid-way), and a broken one; and IIN fits that crash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from owsd.components.cloud import Cloud, CloudClient, LocalCloud

RECEIVED: list[torch.Tensor] = []  # every pixel batch a SpyCloud was shown, in this process
CLOSED: list[str] = []  # a SpyCloud client's id each time one is closed


class SpyCloud(Cloud):
    """Records what crosses the boundary, answering like a tiny local model would."""

    def __init__(self, name: str = "test_resnet", weights: str = "random") -> None:
        self.inner = LocalCloud(name, weights)

    @property
    def cloud_id(self) -> str:
        return "spy-" + self.inner.cloud_id

    def open(self) -> CloudClient:
        return _Spy(self.inner.open(), self.cloud_id)


class _Spy(CloudClient):
    def __init__(self, inner: CloudClient, cloud_id: str) -> None:
        super().__init__(cloud_id)
        self.inner = inner

    def _classify(self, pixels: torch.Tensor) -> torch.Tensor:
        RECEIVED.append(pixels.clone())
        return self.inner._classify(pixels)

    def close(self) -> None:
        CLOSED.append(self.cloud_id)


class SlowLocalCloud(LocalCloud):
    """A LocalCloud (same id, same answers) that takes `seconds` per batch, so a run can be killed mid-way."""

    def __init__(self, name: str, weights: str, seconds: float = 1.0) -> None:
        super().__init__(name, weights)
        self.seconds = seconds

    def open(self):
        client = super().open()
        classify = client._classify

        def slow(pixels: torch.Tensor) -> torch.Tensor:
            time.sleep(self.seconds)
            return classify(pixels)

        client._classify = slow
        return client


class NaNCloud(Cloud):
    """A failing service: answers NaN."""

    @property
    def cloud_id(self) -> str:
        return "nan-cloud"

    def open(self) -> CloudClient:
        return _NaN("nan-cloud")


class _NaN(CloudClient):
    def _classify(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.full((len(pixels), 10), float("nan"))


CRASHING_LR = 0.000123  # an IIN recipe at this learning rate has a fit that crashes, under `crashing_fits`


@contextmanager
def crashing_fits() -> Iterator[None]:
    """IIN fits at CRASHING_LR raise, as a recipe whose fit crashes would (its ranges all valid)."""
    from owsd.iin_module import IINModule

    original = IINModule.configure_optimizers

    def configure(self: IINModule) -> Any:
        if self.hparams.lr == CRASHING_LR:
            raise RuntimeError("this recipe's fit crashes")
        return original(self)

    IINModule.configure_optimizers = configure
    try:
        yield
    finally:
        IINModule.configure_optimizers = original
