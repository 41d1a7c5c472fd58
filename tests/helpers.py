"""Clouds with a twist, for tests: a spy, a slow one (to kill mid-way), and a broken one."""

from __future__ import annotations

import time

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
