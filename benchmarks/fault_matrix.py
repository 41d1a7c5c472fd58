"""Fault matrix: each command that writes a folder, stopped at random moments, then run again.

For `run`, `sweep`, `predict`, `attack`, `analyze` and `report` on the tiny test configs, it runs the command
once to the end (the reference), then `--rounds` times per signal sends SIGTERM, SIGINT or SIGKILL at a random
moment within the reference's duration, and runs the same command again. Each interruption passes when:
the process stopped within `--stop_within` seconds of SIGTERM/SIGINT; the rerun exits as the reference did;
its output equals the reference's (text and JSON files, with timings and the folder's own name masked; every
PNG present); every line a stopped run had kept in its partial folder is in the final output; and no partial
folder, temporary file or assessment key is left. It prints a table of counts per command and signal and
writes it, with every failure, to `--out` (Markdown).

`python benchmarks/fault_matrix.py [--rounds 2] [--seed 0] [--out fault_matrix.md]` (about 40 minutes here)
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "lightning_configs" / "cifar10_tiny.yaml"
TINY_IMAGES = REPO / "tests" / "fixtures" / "cifar10_tiny"
MNIST_TINY = REPO / "tests" / "fixtures" / "mnist_tiny.yaml"
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
COMPARED = {".json", ".jsonl", ".md", ".csv", ".txt", ".yaml"}
# Values that differ between two complete runs of the same command: wall times, and the folder's own name.
TIMING = re.compile(r'("[^"]*(seconds|_time|per_second|started|created)[^"]*": )[-0-9.e]+|\b\d+(\.\d+)? ?(s|min)\b')
WANDB_RUN = re.compile(r"offline-run-\d{8}_\d{6}-\w+")  # a wandb run's name: its start time and a random id
FINISHED = -1.0  # `stop`: the command ended before the signal was sent
STRAY = (".partial", ".tmp", ".replaced", ".owsd-started-with", ".owsd-started-under.json", ".assessment")


def tiny(work: Path, subcommand: str) -> list[str]:
    """The CI config with its cache, key and ledger in `work`."""
    return [subcommand, "--config", str(TINY_CONFIG), "--data.source.init_args.root", str(TINY_IMAGES),
            "--data.cache_dir", str(work / "cache"), "--data.scrambler.key_file", str(work / "keys" / "ci.key"),
            "--data.scrambler.ledger_file", str(work / "ledger.sqlite"),
            "--trainer.default_root_dir", str(work / "runs")]  # fmt: skip


def mnist(work: Path, subcommand: str) -> list[str]:
    return [subcommand, "--config", str(MNIST_TINY), "--data.cache_dir", str(work / "cache"),
            "--data.scrambler.key_file", str(work / "keys" / "mnist.key"),
            "--data.scrambler.ledger_file", str(work / "ledger.sqlite")]  # fmt: skip


def commands(work: Path) -> dict[str, tuple[Callable[[Path], list[str]], Path]]:
    """Command name → (argv for an output folder, working directory), after the set-up they need (a fit, a run).
    A sweep runs in the repository: its YAML names configs relative to it, as `wandb agent` runs them."""
    owsd(tiny(work, "fit"), work)
    checkpoint = next((work / "runs").rglob("embedding+cloud-*.ckpt"))
    run_folder = work / "finished-run"
    owsd([*mnist(work, "run"), "--experiment.seeds=[0,1]", "--out", str(run_folder)], work)
    shared = [f"--data.cache_dir={work / 'cache'}", f"--data.scrambler.key_file={work / 'keys' / 'mnist.key'}",
              f"--data.scrambler.ledger_file={work / 'ledger.sqlite'}"]  # fmt: skip
    trial = [f"--config={MNIST_TINY}", f"--config={REPO / 'lightning_configs' / 'loggers' / 'wandb.yaml'}", *shared]
    trial += ["--data.split.images_per_label=100", "--data.split.val_fraction=0.1"]
    sweep = ["sweep", str(REPO / "sweeps" / "iin_size.yaml"), "--trials", "3"]
    predict = [*tiny(work, "predict"), "--ckpt_path", str(checkpoint), "--images", str(TINY_IMAGES)]
    return {
        "run": (lambda out: [*mnist(work, "run"), "--experiment.seeds=[0,1,2]", "--out", str(out)], work),
        "sweep": (lambda out: [*sweep, "--out", str(out), *trial], REPO),
        "predict": (lambda out: [*predict, "--batch_size", "4", "--out", str(out)], work),
        "attack": (lambda out: [*mnist(work, "attack"), "--out", str(out)], work),
        "analyze": (lambda out: [*mnist(work, "analyze"), "--analysis.keys.seed", "3", "--out", str(out)], work),
        "report": (lambda out: ["report", str(run_folder), "--out", str(out)], work),
    }


def owsd(argv: list[str], cwd: Path) -> tuple[int, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "owsd", *argv], cwd=cwd, env=environment(), capture_output=True)
    if done.returncode not in (0,):
        sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
    return done.returncode, time.perf_counter() - started


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def stop(argv: list[str], cwd: Path, after: float, sent: signal.Signals, stop_within: float) -> float | None:
    """Start the command, send `sent` after `after` seconds, and the seconds it took to stop (None: it ran on
    past `stop_within`, then was killed)."""
    process = subprocess.Popen([sys.executable, "-m", "owsd", *argv], cwd=cwd, env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        process.wait(after)
        return FINISHED
    except subprocess.TimeoutExpired:
        pass
    process.send_signal(sent)
    signalled = time.perf_counter()
    try:
        process.wait(stop_within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
    return time.perf_counter() - signalled


def texts(folder: Path) -> dict[str, str]:
    """Every compared file under `folder` (outside wandb runs), timings and the folder's name masked."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or "wandb" in relative.parts or path.name == "provenance.json":  # its wall time
            continue
        if path.suffix == ".png":
            found[str(relative)] = "PNG"
        elif path.suffix in COMPARED:
            text = path.read_text(errors="replace").replace(str(folder), "OUT").replace(folder.name, "OUT")
            text = TIMING.sub(lambda m: (m.group(1) or "") + "T", text)
            found[str(relative)] = WANDB_RUN.sub("offline-run-ID", text)
    return found


def kept_lines(partial: Path) -> dict[str, list[str]]:
    """The finished work a stopped run kept: each JSON-lines file's lines, each finished trial's record."""
    if not partial.exists():
        return {}
    return {str(p.relative_to(partial)): p.read_text().splitlines() for p in partial.rglob("*.jsonl")}


def strays(work: Path) -> list[str]:
    return [str(p) for p in work.rglob("*") if any(p.name.endswith(s) or p.name == s for s in STRAY)]


def check(name: str, argv: Callable[[Path], list[str]], work: Path, cwd: Path, sent: str, moment: float,
          reference: dict[str, str], stop_within: float, index: int) -> tuple[list[str], float]:  # fmt: skip
    """One interruption and its rerun: the problems found (none: it passed), and the seconds it took to stop."""
    out = work / f"{name}-{sent}-{index}"
    stopped = stop(argv(out), cwd, moment, SIGNALS[sent], stop_within)
    while stopped == FINISHED:  # it ended before the signal: not an interruption; try earlier
        shutil.rmtree(out)
        moment /= 2
        stopped = stop(argv(out), cwd, moment, SIGNALS[sent], stop_within)
    problems = [] if stopped is not None or sent == "SIGKILL" else [f"did not stop within {stop_within:.0f} s"]
    partial = out.with_name(out.name + ".partial")
    before = kept_lines(partial)
    finished = out.exists() and not partial.exists()  # the signal came after the results were complete
    code = 0 if finished else owsd(argv(out), cwd)[0]
    if code != 0:
        return [*problems, f"rerun exited {code}"], stopped or stop_within
    after = texts(out)
    if after != reference:
        differing = sorted(set(after) ^ set(reference)) or [k for k in after if after[k] != reference.get(k)]
        problems.append(f"output differs from the reference: {', '.join(differing[:5])}")
    for relative, lines in before.items():  # a file folded into the results (predict's answers) is compared above
        if (out / relative).exists() and not set(lines) <= set((out / relative).read_text().splitlines()):
            problems.append(f"lost finished lines of {relative}")
    problems += [f"stray {path}" for path in strays(work)]
    return problems, stopped if stopped is not None else stop_within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interruptions per command and signal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop_within", type=float, default=20.0, help="seconds a SIGTERM/SIGINT may take")
    parser.add_argument("--commands", nargs="*", help="a subset of run sweep predict attack analyze report")
    parser.add_argument("--out", type=Path, default=Path("fault_matrix.md"))
    args = parser.parse_args()
    draw = random.Random(args.seed)
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="owsd-faults-") as temporary:
        work = Path(temporary)
        built = commands(work)
        for name, (argv, cwd) in built.items():
            if args.commands and name not in args.commands:
                continue
            code, seconds = owsd(argv(work / f"{name}-reference"), cwd)
            if code != 0:
                failures.append(f"{name}: the uninterrupted run exited {code}")
                continue
            reference = texts(work / f"{name}-reference")
            for sent in SIGNALS:
                passed, slowest = 0, 0.0
                for index in range(args.rounds):
                    moment = draw.uniform(0.1, 1.0) * seconds
                    problems, took = check(name, argv, work, cwd, sent, moment, reference, args.stop_within, index)
                    passed, slowest = passed + (not problems), max(slowest, took)
                    failures += [f"{name} {sent} at {moment:.1f} s: {problem}" for problem in problems]
                rows.append((name, sent, args.rounds, passed, slowest, seconds))
                print(f"{name:8} {sent:8} {passed}/{args.rounds} passed, stopped within {slowest:.1f} s "
                      f"(uninterrupted: {seconds:.0f} s)", flush=True)  # fmt: skip
    table = ["| command | signal | interruptions | passed | slowest stop | uninterrupted run |"]
    table += ["|---|---|---|---|---|---|"]
    table += [f"| {n} | {s} | {r} | {p} | {w:.1f} s | {t:.0f} s |" for n, s, r, p, w, t in rows]
    total = sum(row[2] for row in rows)
    report = "\n".join([f"# Fault matrix: {total} interruptions", "", *table, "", "## Failures", ""])
    report += "\n".join(f"- {failure}" for failure in failures) or "none"
    args.out.write_text(report + "\n")
    print(report)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
