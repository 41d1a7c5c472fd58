"""Peak memory of a precompute against the number of rotating keys (`defences.rotate_every`).

    python benchmarks/rotation_memory.py [--images 512] [--batch_size 16] [--every 0 128 32 16] [--size 256]

Each setting fills a fresh cache in a fresh process with the shipped path (`fill_cache` on one CPU process),
from synthetic images through a random-weight ResNet-50 encoder seeing 32 px (its 2,048-wide embedding makes
the paper's generator size, ≈ 78 MB at 256 px and 512 channels), a generator of `--size` pixels and timm's tiny
test cloud, and reports that process's peak resident memory (`ru_maxrss`) and wall time. `--every 0` is one key. With K ≥
the batch size each batch needs at most two generators, so the peak should not grow with the number of keys.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(images: int, batch_size: int, every: int, size: int) -> dict[str, float]:
    """One fresh cache in this process: peak RSS (MB), wall time (s), and the number of keys."""
    from lightning.pytorch import Trainer

    from owsd.components.cloud import LocalCloud
    from owsd.components.scrambler import Defences, ScramblerSettings
    from owsd.components.timm_models import ModelSpec
    from owsd.data.synthetic import SyntheticSource
    from owsd.pipeline import Pipeline
    from owsd.precompute import fill_cache

    workdir = Path(tempfile.mkdtemp(prefix="owsd-rotation-"))
    defences = Defences(rotate_every=every or None)
    scrambler = ScramblerSettings(workdir / "bench.key", create_key=True, size=size, channels=512,
                                  defences=defences, ledger_file=str(workdir / "ledger.sqlite"))  # fmt: skip
    pipeline = Pipeline(SyntheticSource(images, image_size=32), [ModelSpec("resnet50", "random", input_size=32)],
                        LocalCloud("test_resnet", "random"), scrambler, image_size=32, cache_dir=workdir / "cache",
                        precompute_batch_size=batch_size)  # fmt: skip
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False)  # fmt: skip
    started = time.perf_counter()
    fill_cache(pipeline, list(range(images)), trainer)
    wall = time.perf_counter() - started
    keys = len(set(pipeline.scramblers()[0].rotation_of(list(range(images))))) if every else 1
    return {"keys": keys, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--every", type=int, nargs="+", default=[0, 128, 32, 16])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one setting, print JSON
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.images, args.batch_size, args.one, args.size)))
        return
    print(f"{args.images} images, batches of {args.batch_size}, generator {args.size} px / 512 channels\n")
    print("| rotate_every | keys | peak RSS MB | wall s |\n|---|---|---|---|")
    for every in args.every:
        command = [sys.executable, __file__, "--images", str(args.images), "--batch_size", str(args.batch_size),
                   "--size", str(args.size), "--one", str(every)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        label = every or "— (one key)"
        print(f"| {label} | {row['keys']} | {row['peak_mb']:.0f} | {row['wall_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
