"""Where a results folder came from: the commit, the command, the machine and the wall time.

Every command's output folder gets a `provenance.json` as it completes (`owsd.commands.output`), so a
figure quoted from `results/` can be traced to the code and the machine that measured it."""

import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]


def source_commit() -> str:
    """The git commit owsd runs from (`+changes` when tracked files differ from it), or its version outside
    a checkout."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()  # fmt: skip

    if not (_CHECKOUT / ".git").exists():  # installed from a wheel: no checkout of its own
        return f"owsd {metadata.version('owsd')}"
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return f"owsd {metadata.version('owsd')}"


def machine() -> dict:
    """What the timings depend on: CPU model and count, memory, accelerator, Python and torch."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    except OSError:
        pass
    torch = sys.modules.get("torch")  # not imported for it: `owsd report` and `sweep` run without torch
    gpu = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(), "memory_gib": round(pages / 2**30, 1), "gpu": gpu,
        "python": platform.python_version(), "torch": _version("torch"), "platform": platform.platform(),
    }  # fmt: skip


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(started: float, resumed: bool) -> dict:
    """The record of a run that began at `started` (time.time()) and ends now."""
    return {
        "commit": source_commit(),
        "command": shlex.join(["owsd", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("owsd", "__main__.py") else
        shlex.join(sys.argv),
        "machine": machine(),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "resumed": resumed,  # the wall time is this attempt's; an interrupted one's work is not counted
    }  # fmt: skip
