"""A bounded load test on loopback: a fixed number of concurrent clients, each making single-image calls through
`RemoteCloud` (as `owsd predict` does for one image), within a time limit. Prints throughput and p50/p99 latency
(`pytest -s` or `-rP` shows them); `benchmarks/load_test.py` is the real-model version."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from owsd.components.generator import ScrambledImages
from owsd.serving.client import RemoteCloud
from owsd.serving.server import create_app
from tests.serving.conftest import MODEL, in_process, live_server

CLIENTS, CALLS, TIME_LIMIT = 3, 5, 30.0


def test_concurrent_single_image_calls_all_answer_correctly_in_time(served):
    images = np.random.default_rng(1).integers(0, 256, (CLIENTS, CALLS, 3, 32, 32), dtype=np.uint8)
    expected = in_process(images.reshape(CLIENTS * CALLS, 3, 32, 32), 1).reshape(CLIENTS, CALLS, -1)
    answers: dict[tuple[int, int], np.ndarray] = {}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    with live_server(create_app(served)) as url:
        deadline = time.perf_counter() + TIME_LIMIT

        def client(index: int) -> None:
            try:
                cloud = RemoteCloud(url, MODEL, concurrency=1, retries=0, timeout=TIME_LIMIT).open()
                for call in range(CALLS):
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"client {index} passed the time limit after {call} calls")
                    started = time.perf_counter()
                    answer = cloud(ScrambledImages(torch.from_numpy(images[index, call : call + 1]), "load-test"))
                    with lock:
                        latencies.append(1000 * (time.perf_counter() - started))
                        answers[index, call] = answer.numpy()[0]
            except Exception as error:  # noqa: BLE001  (reported by the assertion below)
                with lock:
                    failures.append(f"client {index}: {type(error).__name__}: {error}")

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.perf_counter()) + 1)
        elapsed = time.perf_counter() - started

    assert not any(thread.is_alive() for thread in threads), f"clients still running after {TIME_LIMIT} s"
    assert not failures, failures
    assert elapsed <= TIME_LIMIT and sorted(answers) == [(i, c) for i in range(CLIENTS) for c in range(CALLS)]
    for (index, call), answer in answers.items():
        np.testing.assert_allclose(answer, expected[index, call], atol=1e-6, rtol=0)
    p50, p99 = np.percentile(latencies, [50, 99])
    print(
        f"load test: {CLIENTS} clients × {CALLS} single-image calls in {elapsed:.2f} s: "
        f"{len(latencies) / elapsed:.1f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
