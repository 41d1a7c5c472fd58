"""Does owsd stay linear in time and flat in memory as the private data grows to ImageNet-validation size?

For each N (default 1,000, 5,000, 20,000, 50,000) it writes a config over `SyntheticSource` (N JPEGs decoded
on every load, 10 labels) with timm's tiny random-weight models (encoder `test_efficientnet`, cloud
`test_resnet`, 32×32 scrambled images), then runs `owsd run` in a fresh process three times, each into its
own folder and ledger: 5 seeds × 3 training sizes (15 repetitions; it precomputes the cache), then from that
cache the same 15 and 1 seed × 1 size. Per N it prints the precompute loop's time per image (models built and
cache packed excluded: the log's "precomputed N images in S s") and the whole precompute's, the cache's size
on disk, and each run's wall time and peak RSS (the process's own, from `wait4`).

Targets (issue 11): precompute time per image at 50,000 within 1.2× of that at 1,000; the 15-repetition run's
peak RSS at 50,000 ≤ model memory + 1.5 × the cache on disk, where model memory is the cached 1-repetition
run's peak RSS at the smallest N (imports and models: torch's CUDA build alone maps most of it); and the same
peak RSS for 15 repetitions as for 1 (both from the cache).

`python benchmarks/scale.py [--sizes 1000 5000 20000 50000] [--out scale.json]`
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from owsd.__main__ import keep_freed_memory

CONFIG = """\
seed_everything: 0
trainer: {{accelerator: cpu, devices: 1, max_epochs: {epochs}, logger: false, enable_progress_bar: false}}
model: {{hidden_size: 64, patience: 2}}
data:
  source:
    class_path: owsd.data.synthetic.SyntheticSource
    init_args: {{images: {images}, classes: 10, image_size: 48}}
  encoders: [{{name: test_efficientnet, weights: random}}]
  cloud:
    class_path: owsd.components.cloud.LocalCloud
    init_args: {{name: test_resnet, weights: random}}
  scrambler: {{key_file: {folder}/scale.key, create_key: true, size: 32, channels: 16, ledger_file: {ledger}}}
  split: {{test_fraction: 0.3, val_fraction: 0.1, draw_seed: 0}}
  image_size: 32
  cache_dir: {folder}/cache
  batch_size: 256
  precompute_batch_size: 256
experiment:
  protocol: uc5
  row: scale {images}
  seeds: {seeds}
  train_per_label: {sizes}
  inputs: [embedding+cloud, embedding]
"""


def owsd_run(folder: Path, images: int, seeds: list[int], sizes: list[int], epochs: int, name: str) -> dict:
    """One `owsd run` in a fresh process: its wall seconds, peak RSS (MiB) and its run.json."""
    config = folder / f"{name}.yaml"
    ledger = folder / f"{name}.sqlite"
    config.write_text(
        CONFIG.format(images=images, folder=folder, ledger=ledger, seeds=seeds, sizes=sizes, epochs=epochs)
    )
    command = [sys.executable, "-m", "owsd", "run", "--config", str(config), "--out", str(folder / name)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(folder / f"{name}.log", "w"))
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"scale.py: `owsd run` failed for N={images}; see {folder / f'{name}.log'}")
    run = json.loads((folder / name / "run.json").read_text())
    loop = re.search(r"precomputed (\d+) images in ([\d.]+) s", (folder / f"{name}.log").read_text())
    return {
        "seconds": seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "precompute_seconds": run["precompute_seconds"],
        "precomputed": (int(loop[1]), float(loop[2])) if loop else (0, 0.0),
    }


def cache_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in (folder / "cache").rglob("*") if path.is_file()) / 2**20


def measure(images: int, epochs: int, scratch: Path) -> dict:
    folder = scratch / f"n{images}"
    folder.mkdir()
    seeds, sizes = [0, 1, 2, 3, 4], [5, 20, 50]
    first = owsd_run(folder, images, seeds, sizes, epochs, "precompute")
    many = owsd_run(folder, images, seeds, sizes, epochs, "seeds5_sizes3")
    one = owsd_run(folder, images, [0], [50], epochs, "seeds1_sizes1")
    computed, loop_seconds = first["precomputed"]
    row = {
        "images": images,
        "precomputed": computed,
        "precompute_ms_per_image": 1000 * loop_seconds / computed,
        "precompute_total_ms_per_image": 1000 * first["precompute_seconds"] / computed,
        "cache_mib": cache_mib(folder),
        "runs": {"precompute + 15 repetitions": first, "15 repetitions": many, "1 repetition": one},
    }
    print(
        f"N={images}: precompute {computed} images, {row['precompute_ms_per_image']:.2f} ms/image in the loop, "
        f"{row['precompute_total_ms_per_image']:.2f} in all ({first['peak_rss_mib']:.0f} MiB), "
        f"cache {row['cache_mib']:.0f} MiB, "
        f"15 repetitions {many['seconds']:.0f} s / {many['peak_rss_mib']:.0f} MiB, "
        f"1 repetition {one['seconds']:.0f} s / {one['peak_rss_mib']:.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return row


def table(rows: list[dict]) -> str:
    model_mib = rows[0]["runs"]["1 repetition"]["peak_rss_mib"]
    head = f"{'N':>7}{'sent':>7}{'loop ms/img':>13}{'×N=' + str(rows[0]['images']):>9}{'all ms/img':>12}"
    head += f"{'its MiB':>9}{'cache MiB':>11}"
    head += f"{'15 reps s':>11}{'15 reps MiB':>13}{'1 rep MiB':>11}{'limit MiB':>11}"
    lines = [head]
    for row in rows:
        many, one = row["runs"]["15 repetitions"], row["runs"]["1 repetition"]
        limit = model_mib + 1.5 * row["cache_mib"]
        ratio = row["precompute_ms_per_image"] / rows[0]["precompute_ms_per_image"]
        lines.append(
            f"{row['images']:>7}{row['precomputed']:>7}{row['precompute_ms_per_image']:>13.2f}{ratio:>9.2f}"
            f"{row['precompute_total_ms_per_image']:>12.2f}"
            f"{row['runs']['precompute + 15 repetitions']['peak_rss_mib']:>9.0f}{row['cache_mib']:>11.0f}"
            f"{many['seconds']:>11.0f}{many['peak_rss_mib']:>13.0f}{one['peak_rss_mib']:>11.0f}{limit:>11.0f}"
        )
    lines.append(
        f"limit = model memory ({model_mib:.0f} MiB: the 1-repetition run at N={rows[0]['images']}) + 1.5 × cache"
    )
    return "\n".join(lines)


def main() -> None:
    keep_freed_memory([sys.executable, __file__, *sys.argv[1:]])  # as the `owsd` command runs
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000, 50000])
    parser.add_argument("--epochs", type=int, default=3, help="IIN epochs per repetition")
    parser.add_argument("--out", type=Path, help="also write the numbers here (JSON)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="owsd-scale-") as scratch:
        rows = [measure(images, args.epochs, Path(scratch)) for images in args.sizes]
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
