"""GPU precompute throughput: images/s of each stage of the paper's pipelines, and of the whole loop.

For the paper's model sets with random weights (nothing is downloaded) on synthetic JPEGs (`SyntheticSource`,
decoded with PIL on every load), it times each stage alone after warm-up batches, on the device, with a
synchronisation around each: `decode` (the DataLoader with `--num_workers` workers, pinned memory on CUDA, on
the host), `encoder` (host→device copy of the uint8 batch + encoder), `generator` (the pipeline's keyed
scrambler, always fp32 with autocast and TF32 off, to uint8), `cloud` (the key ledger's record of the bytes,
then preprocess + classifier + softmax) and `cache write` (a cache shard of both vectors). Every stage is the
owsd `Pipeline`'s own part, so the figures are precompute's. ideal = 1 / the sum of the stages' seconds per image;
pipeline = images/s of the end-to-end loop (loader → encoder → generator → cloud → cache write); ratio =
pipeline / ideal (above 1 when the loader's workers hide the decoding). shipped = images/s of the path owsd
runs, `fill_cache` on `precompute_trainer` (Lightning's `trainer.predict`, owsd's loader and shards) over a fresh
cache of batch × batches images, as its predict loop logs it (models built and workers started before the loop);
shipped wall = the same over the whole call, building and planning included. `bf16` autocasts the encoder and the
cloud only; fp32 leaves torch's defaults (cuDNN may use TF32 for their convolutions). On CUDA, models and
inputs are channels_last.

Design goal: on an H100/H200-class card, the UC5 models (resnet50 → generator → inception_v3) at bf16 on
synthetic input reach ≥ 2,000 images/s with pipeline / ideal ≥ 0.9. Run it with:

    python benchmarks/gpu.py --device cuda --precisions fp32 bf16 --models uc1 uc5 --out gpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from owsd.__main__ import keep_freed_memory
from owsd.components.cloud import LocalCloud
from owsd.components.generator import ScrambledImages
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.synthetic import SyntheticSource
from owsd.distributed import precompute_trainer
from owsd.pipeline import Pipeline, autocast
from owsd.precompute import fill_cache

MODEL_SETS = {  # encoder, cloud, scrambled image side
    "uc1": ("resnet101", "legacy_xception", 256),
    "uc5": ("resnet50", "inception_v3", 256),
    "tiny": ("test_resnet", "test_efficientnet", 32),
}
STAGES = ("decode", "encoder", "generator", "cloud", "cache write")
LOAD_SIZE = 256  # the side images are loaded at, as in the paper's precompute
GOAL = {"models": "uc5", "precision": "bf16", "images_per_second": 2000.0, "ratio": 0.9}
PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}  # this benchmark's names → trainer.precision


class HostBatches(Dataset):
    """Item i is batch i of the source (positions wrap around), loaded at `LOAD_SIZE` and stacked."""

    def __init__(self, source: SyntheticSource, batch_size: int) -> None:
        self.source, self.batch_size = source, batch_size

    def __getitem__(self, index: int) -> dict[str, Any]:
        positions = [(index * self.batch_size + j) % len(self.source.items) for j in range(self.batch_size)]
        images = torch.stack([self.source.load(position, LOAD_SIZE) for position in positions])
        return {"image": images, "position": positions}


class Epoch(Sampler[int]):
    """Batches 0..count-1; `count` is set before each epoch so a warm-up can be shorter than a timed epoch."""

    def __init__(self) -> None:
        self.count = 0

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.count))

    def __len__(self) -> int:
        return self.count


class Stages:
    """The precompute stages of one owsd `Pipeline` on one device, each returning what the next takes.

    The real parts: the pipeline's encoder, its keyed scrambler (float32 whatever the precision), its cloud
    client with the key ledger (each batch's bytes hashed on the host before it is sent) and its cache."""

    def __init__(self, models: str, source: SyntheticSource, device: torch.device, scratch: Path) -> None:
        encoder_name, cloud_name, size = MODEL_SETS[models]
        settings = ScramblerSettings(
            scratch / f"{models}.key", create_key=True, size=size, ledger_file=scratch / "ledger.sqlite"
        )  # a throwaway key: never printed, only its generator's weights are used
        self.pipeline = Pipeline(
            source, [ModelSpec(encoder_name, "random")], LocalCloud(cloud_name, "random"), settings,
            image_size=LOAD_SIZE, cache_dir=scratch / "cache",
        )  # fmt: skip
        self.device, self.layout = device, torch.channels_last if device.type == "cuda" else torch.contiguous_format
        (encoder,) = self.pipeline.build_encoders()
        self.encoder = encoder.to(device, memory_format=self.layout)
        (self.scrambler,) = self.pipeline.scramblers()
        self.cloud = self.pipeline.open_cloud("benchmark").to(device, memory_format=self.layout)
        self.pipeline.cache.prepare()
        self.precision = "32-true"

    def mixed(self) -> contextlib.AbstractContextManager:
        """The encoder's and the cloud's arithmetic at `precision`, as precompute runs them."""
        return autocast(self.precision, self.device)  # no new Pipeline per timed call

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.layout)
        with self.mixed():
            return self.encoder(images)

    def scramble(self, embeddings: torch.Tensor, positions: list[int]) -> ScrambledImages:
        return self.scrambler.scramble(embeddings, self.pipeline.image_ids(positions), positions)

    def ask(self, scrambled: ScrambledImages) -> torch.Tensor:
        with self.mixed():
            return self.cloud(scrambled)

    def write(self, embeddings: torch.Tensor, vectors: torch.Tensor, positions: list[int]) -> None:
        labels = torch.tensor([self.pipeline.source.items[position][1] for position in positions])
        fields = {"embedding": embeddings, "cloud": vectors}
        self.pipeline.cache.write_shard(self.pipeline.image_ids(positions), labels, fields)

    def run(self, batch: dict[str, Any]) -> None:
        embeddings = self.encode(batch["image"])
        self.write(embeddings, self.ask(self.scramble(embeddings, batch["position"])), batch["position"])


def synchronise(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """`function(*args)` and its seconds, with the device idle before and done after."""
    synchronise(device)
    started = time.perf_counter()
    result = function(*args)
    synchronise(device)
    return result, time.perf_counter() - started


def one_round(stages: Stages, loader: DataLoader, epoch: Epoch, batches: int) -> tuple[dict[str, float], float]:
    """Each stage's seconds per batch alone (its fastest of `batches` batches), and the pipeline's loop's seconds
    over as many batches."""
    device, seconds = stages.device, dict.fromkeys(STAGES, float("inf"))
    epoch.count = batches
    started = time.perf_counter()
    host = [batch for index, batch in enumerate(loader) if index == 0]  # the loader alone; keep one batch
    seconds["decode"] = (time.perf_counter() - started) / batches
    positions = host[0]["position"]
    for _ in range(batches):
        embeddings, encoder = timed(device, stages.encode, host[0]["image"])
        scrambled, generator = timed(device, stages.scramble, embeddings, positions)
        vectors, cloud = timed(device, stages.ask, scrambled)
        _, write = timed(device, stages.write, embeddings, vectors, positions)
        for stage, value in zip(STAGES[1:], (encoder, generator, cloud, write)):
            seconds[stage] = min(seconds[stage], value)
    synchronise(device)
    started = time.perf_counter()
    for batch in loader:
        stages.run(batch)
    synchronise(device)
    return seconds, time.perf_counter() - started


def measure(stages: Stages, source: SyntheticSource, batch_size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Stage images/s (each alone), pipeline images/s, ideal and ratio at one batch size.

    Each stage counts its fastest batch over all `--repeats` rounds and the pipeline its fastest round: the
    figures least disturbed by whatever else the machine runs. Taking each stage's own best (rather than the
    round whose stages sum least) keeps a stall in every round from inflating one stage, so `ideal` is the
    rate the loop would reach with every stage at its best, and the ratio stays an honest bound."""
    epoch, workers = Epoch(), args.num_workers
    loader = DataLoader(
        HostBatches(source, batch_size),
        batch_size=None,
        sampler=epoch,
        num_workers=workers,
        pin_memory=stages.device.type == "cuda",
        persistent_workers=workers > 0,  # the timed epochs do not pay for starting workers
        prefetch_factor=4 if workers else None,
    )
    epoch.count = args.warmup
    for batch in loader:  # warm-up: workers, allocator, cuDNN
        stages.run(batch)
    rounds = [one_round(stages, loader, epoch, args.batches) for _ in range(args.repeats)]
    per_batch = {stage: min(seconds[stage] for seconds, _ in rounds) for stage in STAGES}
    pipeline_rate = batch_size * args.batches / min(loop for _, loop in rounds)
    ideal = batch_size / sum(per_batch.values())
    stages = {stage: batch_size / max(value, 1e-9) for stage, value in per_batch.items()}
    return {"stages": stages, "pipeline": pipeline_rate, "ideal": ideal, "ratio": pipeline_rate / ideal}


def shipped(stages: Stages, batch_size: int, args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    """Images/s of the shipped precompute (see the module's docstring): its predict loop, and the whole call."""
    pipeline = stages.pipeline.replace(
        cache_dir=scratch / f"shipped-{stages.precision}-{batch_size}", precompute_batch_size=batch_size,
        num_workers=args.num_workers, precision=stages.precision,
    )  # fmt: skip
    device = stages.device
    devices = [device.index or 0] if device.type == "cuda" else 1
    settings = {"accelerator": device.type, "devices": devices, "precision": stages.precision}
    trainer = precompute_trainer({**settings, "enable_progress_bar": False}, timeout=600)
    logged: list[float] = []
    reporter = logging.getLogger("owsd.precompute")
    listener = LoopRate(logged)
    reporter.addHandler(listener)
    level, reporter.level = reporter.level, logging.INFO
    try:
        started = time.perf_counter()
        fill_cache(pipeline, list(range(batch_size * args.batches)), trainer)
        wall = time.perf_counter() - started
    finally:
        reporter.removeHandler(listener)
        reporter.setLevel(level)
    (loop,) = logged
    return {"shipped": loop, "shipped_wall": batch_size * args.batches / wall}


class LoopRate(logging.Handler):
    """Collects the images/s of precompute's `rank R precomputed N images in S s (X images/s)` line."""

    def __init__(self, rates: list[float]) -> None:
        super().__init__(logging.INFO)
        self.rates = rates

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("rank ") and " precomputed " in record.getMessage():
            self.rates.append(float(record.args[-1]))


def refuse(message: str) -> None:
    """One line on stderr and exit 2: the machine cannot run what was asked."""
    print(f"gpu.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def check_device(device: torch.device, precisions: list[str]) -> str:
    """The device's name, after refusing a missing CUDA or a bf16 the device cannot autocast."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            refuse(f"--device {device} but CUDA is not available to torch {torch.__version__} on this machine")
        if "bf16" in precisions and not torch.cuda.is_bf16_supported():
            refuse(f"--precisions bf16 but {torch.cuda.get_device_name(device)} does not support bfloat16")
        return torch.cuda.get_device_name(device)
    if "bf16" in precisions and not torch.amp.autocast_mode.is_autocast_available(device.type):
        refuse(f"--precisions bf16 but torch cannot autocast on device type {device.type!r}")
    return platform.processor() or platform.machine() or device.type


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as plain text, images/s in every column but the ratio."""
    header = f"{'models':8}{'precision':>10}{'batch':>7}" + "".join(f"{s:>13}" for s in STAGES)
    header += f"{'pipeline':>11}{'ideal':>11}{'ratio':>7}{'shipped':>10}{'shipped wall':>14}"
    lines = [header, "-" * len(header)]
    for row in rows:
        line = f"{row['models']:8}{row['precision']:>10}{row['batch_size']:>7}"
        line += "".join(f"{row['stages'][s]:13.1f}" for s in STAGES)
        line += f"{row['pipeline']:11.1f}{row['ideal']:11.1f}{row['ratio']:7.3f}"
        lines.append(line + f"{row['shipped']:10.1f}{row['shipped_wall']:14.1f}")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line; `--tiny` replaces `--models`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[64, 128, 256, 512])
    parser.add_argument("--batches", type=int, default=8, help="timed batches per stage and for the pipeline")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed rounds; each stage's fastest batch and the fastest loop count"
    )
    parser.add_argument("--models", nargs="+", default=["uc1", "uc5"], choices=list(MODEL_SETS))
    parser.add_argument("--tiny", action="store_true", help="timm's tiny test models only (same as --models tiny)")
    parser.add_argument("--num_workers", type=int, default=min(16, max(1, (os.cpu_count() or 1) - 2)))
    parser.add_argument("--jpeg_size", type=int, default=320, help="side of the synthetic JPEGs decoded")
    parser.add_argument("--cache_dir", type=Path, help="where the shards are written (default: the temp dir)")
    parser.add_argument("--out", type=Path, default=Path("gpu.json"), help="JSON file of the rows")
    args = parser.parse_args(argv)
    if min(args.batch_sizes + [args.batches, args.warmup, args.repeats]) < 1 or args.num_workers < 0:
        parser.error("batch sizes, --batches, --warmup and --repeats must be ≥ 1, --num_workers ≥ 0")
    args.models = ["tiny"] if args.tiny else args.models
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure every model set × precision × batch size; print the table, write the JSON."""
    args = parse(argv)
    device = torch.device(args.device)
    device_name = check_device(device, args.precisions)
    source = SyntheticSource(max(args.batch_sizes) * args.batches, classes=10, image_size=args.jpeg_size)
    source.load(0, LOAD_SIZE)  # encode the JPEG pool before the loader's workers fork
    rows: list[dict[str, Any]] = []
    with torch.inference_mode(), tempfile.TemporaryDirectory(prefix="owsd-gpu-", dir=args.cache_dir) as scratch:
        for models in args.models:
            stages = Stages(models, source, device, Path(scratch))
            for precision in args.precisions:
                stages.precision = PRECISIONS[precision]
                for batch_size in args.batch_sizes:
                    row = {"models": models, "precision": precision, "batch_size": batch_size}
                    row.update(measure(stages, source, batch_size, args))
                    row.update(shipped(stages, batch_size, args, Path(scratch)))
                    rows.append(row)
                    print(
                        f"gpu.py: {models} {precision} batch {batch_size}: pipeline {row['pipeline']:.1f} images/s, "
                        f"ideal {row['ideal']:.1f}, ratio {row['ratio']:.3f}, shipped {row['shipped']:.1f} "
                        f"({row['shipped_wall']:.1f} over the whole call)",
                        file=sys.stderr,
                        flush=True,
                    )
            del stages
    print(f"{device_name} ({device}), torch {torch.__version__}, {args.num_workers} workers, {args.batches} batches")
    print(table(rows))
    goal = [r for r in rows if r["models"] == GOAL["models"] and r["precision"] == GOAL["precision"]]
    if goal:
        best = max(goal, key=lambda r: r["pipeline"])
        met = best["pipeline"] >= GOAL["images_per_second"] and best["ratio"] >= GOAL["ratio"]
        verdict = "PASS" if met else "FAIL"
        print(f"goal: uc5 bf16 ≥ 2000 images/s at ratio ≥ 0.9: {verdict} (best: batch {best['batch_size']})")
    numbers = {"device": str(device), "device_name": device_name, "torch": torch.__version__, "rows": rows}
    numbers.update(num_workers=args.num_workers, batches=args.batches, warmup=args.warmup, repeats=args.repeats)
    numbers["threads"] = torch.get_num_threads()
    args.out.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    keep_freed_memory([sys.executable, __file__, *sys.argv[1:]])  # as the `owsd` command runs
    main()
