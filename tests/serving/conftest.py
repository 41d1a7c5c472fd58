"""A tiny served model, and real uvicorn servers on free loopback ports in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import uvicorn

from owsd.components.cloud import LocalCloud
from owsd.serving.server import ServedModel
from tests.conftest import free_port

MODEL = "test_efficientnet"  # a tiny timm classifier, random weights


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared 2-core machine (DEVELOPERS.md); restored after, as other tests compare floats."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def served() -> ServedModel:
    return ServedModel.load(MODEL, "random", max_batch=8)


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (10, 3, 24, 24), dtype=np.uint8)


def in_process(images: np.ndarray, batch_size: int) -> np.ndarray:
    """What `LocalCloud` answers for `images` sent in batches of `batch_size`."""
    client = LocalCloud(MODEL, "random").open()
    batches = [torch.from_numpy(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat([client._classify(batch) for batch in batches]).numpy()


@contextmanager
def live_server(app, port: int | None = None, delay: float = 0.0) -> Iterator[str]:
    """`app` on http://127.0.0.1:PORT in a thread (started after `delay` seconds), stopped on exit."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))

    def run() -> None:
        time.sleep(delay)
        server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while delay == 0 and not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
