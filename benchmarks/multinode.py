"""Precompute on 1, 2 and 4 processes on loopback: wall time, images/s, images per rank, and the cache.

    python benchmarks/multinode.py [--images 10000] [--processes 1 2 4] [--batch_size 64] [--out DIR]

Each process count fills a fresh cache with the shipped path, `fill_cache` on `precompute_trainer` under
`torchrun --standalone --nproc-per-node N` (gloo, CPU), from synthetic JPEGs (`SyntheticSource`) through timm's
tiny test models, under one key. Prints a Markdown table: wall time of the whole launch (process start, imports,
models and the meetings included), images/s over it, the images each rank stored, the overhead against one
process, and whether the cache holds exactly the rows one process stores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pipeline(images: int, batch_size: int, workdir: Path):
    from owsd.components.cloud import LocalCloud
    from owsd.components.scrambler import ScramblerSettings
    from owsd.components.timm_models import ModelSpec
    from owsd.data.synthetic import SyntheticSource
    from owsd.pipeline import Pipeline

    scrambler = ScramblerSettings(workdir / "bench.key", create_key=False, size=32, channels=16,
                                  ledger_file=str(workdir / "ledger.sqlite"))  # fmt: skip
    return Pipeline(SyntheticSource(images, image_size=32), [ModelSpec("test_efficientnet", "random")],
                    LocalCloud("test_resnet", "random"), scrambler, image_size=32, cache_dir=workdir / "cache",
                    precompute_batch_size=batch_size)  # fmt: skip


def worker(images: int, batch_size: int, workdir: Path, processes: int) -> None:
    """One rank: its share of filling the cache."""
    import torch.distributed

    from owsd.cli import configure_logging
    from owsd.distributed import end_distributed, precompute_trainer
    from owsd.precompute import fill_cache

    configure_logging()  # the owsd log lines (each rank's images and images/s), Lightning's warnings only
    bench = pipeline(images, batch_size, workdir)
    settings = {"accelerator": "cpu", "devices": processes, "enable_progress_bar": False}
    trainer = precompute_trainer(settings, timeout=600)
    fill_cache(bench, list(range(images)), trainer)  # each rank logs the images it stored
    if torch.distributed.is_initialized():
        end_distributed(trainer)


def images_per_rank(log: str) -> list[int]:
    """From each rank's `rank R precomputed N images` line, N by rank."""
    counts = {int(rank): int(images) for rank, images in re.findall(r"rank (\d+) precomputed (\d+) images", log)}
    return [counts[rank] for rank in sorted(counts)]


def launch(processes: int, images: int, batch_size: int, workdir: Path) -> tuple[float, list[int], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    env.update({"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"})
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(processes),
        __file__,
        "--worker",
        "--images",
        str(images),
        "--batch_size",
        str(batch_size),
        "--out",
        str(workdir),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{processes} processes failed:\n{done.stderr[-3000:]}")
    return seconds, images_per_rank(done.stderr), done.stderr


def table_of(workdir: Path) -> dict:
    import torch

    from owsd.data.cache import PairCache

    (folder,) = [f for f in (workdir / "cache").iterdir() if f.is_dir() and f.name != "embeddings"]
    table = PairCache.existing(folder).table()
    order = sorted(range(len(table.image_ids)), key=table.image_ids.__getitem__)
    rows = torch.tensor(order)
    return {"ids": sorted(table.image_ids), **{name: field[rows].clone() for name, field in table.fields.items()}}


def difference(first: dict, second: dict) -> str:
    """`identical`, or the largest difference between two caches' rows (None if they hold other images)."""
    if first["ids"] != second["ids"]:
        return "other images"
    largest = max(float((first[k] - second[k]).abs().max()) for k in first if k != "ids")
    return "identical" if largest == 0 else f"max |Δ| {largest:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="keep the caches here (default: a temporary folder)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.images, args.batch_size, args.out, int(os.environ["WORLD_SIZE"]))
        return
    from owsd.components.key import Key, save_key

    root = args.out or Path(tempfile.mkdtemp(prefix="owsd-multinode-"))
    key = Key.generate()
    results, reference = [], None
    for processes in args.processes:
        workdir = root / f"{processes}-processes"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        save_key(key, workdir / "bench.key")
        seconds, per_rank, log = launch(processes, args.images, args.batch_size, workdir)
        (root / f"{processes}-processes.log").write_text(log)
        rows = table_of(workdir)
        reference = reference or rows
        results.append({"processes": processes, "seconds": seconds, "images_per_rank": per_rank,
                        "cache": difference(rows, reference), "rows": len(rows["ids"])})  # fmt: skip
    one = results[0]["seconds"]
    print(f"{args.images} synthetic images, batches of {args.batch_size}, tiny models, CPU, {os.cpu_count()} cores")
    print("| processes | wall s | images/s | images per rank | wall vs 1 process | rows against 1 process's |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['processes']} | {r['seconds']:.1f} | {args.images / r['seconds']:.1f} | "
              f"{', '.join(map(str, r['images_per_rank']))} | {r['seconds'] / one:.2f}× | "
              f"{r['cache']}, {r['rows']} rows |")  # fmt: skip
    (root / "multinode.json").write_text(json.dumps(results, indent=2))
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
