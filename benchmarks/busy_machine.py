"""Does owsd stay usable on a busy machine? Start-up of the key commands, and a tiny IIN fit idle vs loaded.

Shared 2-core machines are where owsd runs in CI and on cheap VMs. Two things went wrong there: every
command imported Lightning, timm and torch before doing anything (11-27 s for `owsd key list`), and
torch's default of a thread per core made small fits 10x slower as soon as other processes took the cores.
This measures (a) the median start-up of `owsd --help`, `owsd key new`, `owsd key list`, a command's `--help`
(its first printing, from the text shipped for this installation, then again), a missing or broken `--config`
and an unknown option, as fresh
`python -m owsd` processes (re-exec included), and (b) the demo's IIN fit as `owsd fit` runs it (see
`fit_worker`), a fixed number of epochs, at 1 and 2 torch threads, idle and then with CPU-bound processes on
every core.
Targets: start-up < 1 s; busy <= 3x idle for the configuration owsd uses (`SMALL_MODEL_THREADS`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from owsd.__main__ import PROCESS_ENVIRONMENT, keep_freed_memory
from owsd.threads import SMALL_MODEL_THREADS

STARTUP_TARGET_SECONDS = 1.0
BUSY_TARGET_RATIO = 3.0
FIT_TIMEOUT_SECONDS = 600.0  # a 2-thread fit on a loaded machine is slow, but never this slow


def fit_worker(threads: int, epochs: int) -> None:
    """Runs in its own process (torch reads OMP_WAIT_POLICY once, when it loads); prints the fit's seconds.

    The demo's IIN fit as `owsd fit` runs it (`owsd.training.fit_and_test`: a Lightning Trainer, early
    stopping and checkpointing on the validation loss, then a test of the best checkpoint), on pairs of the
    demo's shape: 700 training rows (and 370 for validation and test, the demo's 70 + 300) of a 1,280-d
    embedding and a 1,000-d cloud vector."""
    import torch
    from iin_fit import synthetic_datamodule, synthetic_rows
    from lightning.pytorch import Trainer

    from owsd.cli import configure_logging
    from owsd.iin_module import IINModule
    from owsd.training import fit_and_test

    configure_logging()
    rows = synthetic_rows(1070, 1280, 1000, 10, separation=3.0, seed=0)
    with tempfile.TemporaryDirectory(prefix="owsd-bench-") as scratch:
        data = synthetic_datamodule(rows, 10, 370 / 1070, 64, Path(scratch) / "k.key")
        data.pairs["test"] = data.pairs["val"]
        torch.manual_seed(0)
        trainer = Trainer(
            accelerator="cpu", devices=1, max_epochs=epochs, default_root_dir=scratch, logger=False,
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        started = time.perf_counter()
        fit_and_test(trainer, IINModule(patience=epochs), data, threads)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "threads": threads}))


def timed_fit(threads: int, epochs: int) -> float:
    """Seconds of one fit in a fresh process, which inherits this one's environment (the wait policy)."""
    command = [sys.executable, __file__, "--fit-worker", str(threads), "--epochs", str(epochs)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=FIT_TIMEOUT_SECONDS, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def start_hogs(count: int, lifetime: float) -> list[subprocess.Popen]:
    """CPU-bound processes standing in for other users. Each also stops itself after `lifetime` seconds,
    so even a benchmark killed with SIGKILL leaves no spinning process behind for long."""
    spin = f"import time\nend = time.monotonic() + {lifetime}\nwhile time.monotonic() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait()


def startup_seconds(args: list[str], runs: int, cache_home: Path) -> float:
    """Median wall time of `python -m owsd ARGS` (`{i}` in an argument becomes the run's number), in the
    environment a user has: without the settings the command re-executes itself to add, its help texts kept
    under `cache_home`. A refusal (exit 2) is an answer too."""
    environment = {name: value for name, value in os.environ.items() if name not in PROCESS_ENVIRONMENT}
    environment["XDG_CACHE_HOME"] = str(cache_home)
    times = []
    for run in range(runs):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "owsd", *(a.format(i=run) for a in args)],
            env=environment, capture_output=True, timeout=120,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
        if result.returncode not in (0, 2):
            raise RuntimeError(f"owsd {' '.join(args)} failed: {result.stderr[-2000:]}")
    return statistics.median(times)


def measure_startup(runs: int) -> dict[str, float]:
    from owsd.components.ledger import KeyLedger

    with tempfile.TemporaryDirectory(prefix="owsd-bench-") as scratch:
        ledger, home = Path(scratch) / "ledger.sqlite", Path(scratch) / "cache-home"
        KeyLedger(ledger, "benchmark").register("0123456789abcdef", Path(scratch) / "k.key", time.time(), 100)
        broken = Path(scratch) / "broken.yaml"
        broken.write_text("data:\n  batch_size: [1,\n")
        first_help = {"owsd fit --help, its first time": startup_seconds(["fit", "--help"], 1, home)}
        commands = {
            "owsd --help": ["--help"],
            "owsd key new TMP": ["key", "new", str(Path(scratch) / "key-{i}.key")],
            "owsd key list --ledger TMP": ["key", "list", "--ledger", str(ledger)],
            "owsd fit --help, again": ["fit", "--help"],
            "owsd fit --config MISSING": ["fit", "--config", str(Path(scratch) / "missing.yaml")],
            "owsd run --config BROKEN --out X": ["run", "--config", str(broken), "--out", str(Path(scratch) / "x")],
            "owsd fit --no_such_option 1": ["fit", "--no_such_option", "1"],
        }
        return first_help | {name: startup_seconds(args, runs, home) for name, args in commands.items()}


def measure_fits(thread_counts: list[int], epochs: int, hogs: int) -> list[dict[str, float]]:
    """Every setting idle first, then all of them under load, so the hogs run only as long as needed."""
    idle = {threads: timed_fit(threads, epochs) for threads in thread_counts}
    background = start_hogs(hogs, lifetime=FIT_TIMEOUT_SECONDS * len(thread_counts))
    try:
        time.sleep(0.5)  # let the hogs reach full speed
        busy = {threads: timed_fit(threads, epochs) for threads in thread_counts}
    finally:
        stop(background)
    return [
        {"threads": t, "idle_seconds": idle[t], "busy_seconds": busy[t], "busy_over_idle": busy[t] / idle[t]}
        for t in thread_counts
    ]


def print_fits(fits: list[dict[str, float]], epochs: int, hogs: int) -> None:
    print(f"\nthe demo's IIN fit, {epochs} epochs, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"{hogs} CPU-bound processes when busy")  # fmt: skip
    print(f"  {'setting':12}{'idle s':>9}{'busy s':>9}{'busy/idle':>11}")
    for fit in fits:
        mark = f"  target <= {BUSY_TARGET_RATIO:.0f}x: " if fit["threads"] == SMALL_MODEL_THREADS else ""
        verdict = ("PASS" if fit["busy_over_idle"] <= BUSY_TARGET_RATIO else "FAIL") if mark else ""
        print(f"  {str(fit['threads']) + ' thread(s)':12}{fit['idle_seconds']:9.2f}{fit['busy_seconds']:9.2f}"
              f"{fit['busy_over_idle']:10.1f}x{mark}{verdict}")  # fmt: skip


def main() -> None:
    keep_freed_memory([sys.executable, __file__, *sys.argv[1:]])  # as the `owsd` command runs
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--runs", type=int, default=5, help="start-up runs per command (median)")
    parser.add_argument("--epochs", type=int, default=40, help="IIN epochs (the demo's max_epochs; no early stop)")
    parser.add_argument("--threads", type=int, nargs="+", default=[SMALL_MODEL_THREADS, 2])
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="CPU-bound background processes")
    parser.add_argument("--startup_only", action="store_true", help="measure the start-up rows alone")
    parser.add_argument("--fit-worker", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_worker is not None:
        fit_worker(args.fit_worker, args.epochs)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through `finally`: the hogs are killed

    load = os.getloadavg()[0]
    startup = measure_startup(args.runs)
    print(f"start-up, median of {args.runs} (load average {load:.2f} before)")
    for name, seconds in startup.items():
        print(f"  {name:36}{seconds:6.2f} s  {'PASS' if seconds < STARTUP_TARGET_SECONDS else 'FAIL'}")
    fits = [] if args.startup_only else measure_fits(args.threads, args.epochs, args.hogs)
    if fits:
        print_fits(fits, args.epochs, args.hogs)
    if args.out:
        result = {
            "load_average_before": load,
            "startup_median_seconds": startup,
            "fits": fits,
            "epochs": args.epochs,
            "hogs": args.hogs,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
