"""The `owsd` command. Sets glibc's malloc tunables and OpenMP's wait policy, then runs the CLI.

Batches allocate tensors of tens of MB; by default glibc hands each back to the OS on free and the
next batch page-faults it in again. On VMs (such as 2-core cloud machines) that kernel work costs more
than the convolutions: precompute ran 8× and IIN training 1.5× slower in our measurements. The
tunables must be set before the process starts, so the command re-executes itself once with them
(values already in the environment win).

`OMP_WAIT_POLICY=PASSIVE` makes idle OpenMP workers sleep instead of spinning for their next task: on a
busy machine spinning workers take the cores the working threads need (a tiny IIN fit on 2 threads took
51 s instead of 5 s). The OpenMP runtime reads it once, when torch loads it, so it travels with the
re-exec (a user's own value wins). `KMP_BLOCKTIME` is not set: it is the knob of Intel's and LLVM's
runtimes, while torch's Linux wheels bundle GNU libgomp, whose spinning PASSIVE already turns off
(its own knob, `GOMP_SPINCOUNT`, defaults to 0 spins under PASSIVE).
"""

import os
import sys
from collections.abc import Mapping

KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"}
SLEEPING_OPENMP = {"OMP_WAIT_POLICY": "PASSIVE"}
PROCESS_ENVIRONMENT = {**KEEP_FREED_MEMORY, **SLEEPING_OPENMP}


def reexec_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with: `environ` plus the settings it lacks; None if it has them all."""
    if PROCESS_ENVIRONMENT.keys() <= environ.keys():
        return None
    return {**PROCESS_ENVIRONMENT, **environ}


def keep_freed_memory(command: list[str]) -> None:
    """Re-execute `command` (this process's own) with the settings above, unless they are already set.

    Off Linux (no glibc, no exec needed) only the wait policy is set, in this process's environment:
    that suffices as long as torch, and so the OpenMP runtime, is not loaded yet.
    """
    if not sys.platform.startswith("linux"):
        for name, value in SLEEPING_OPENMP.items():
            os.environ.setdefault(name, value)
        return
    environment = reexec_environment(os.environ)
    if environment is not None:
        os.execve(command[0], command, environment)


def main() -> None:
    # the command as started (`-m owsd` or the `owsd` script), interpreter options such as `-X importtime` kept
    keep_freed_memory([sys.executable, *sys.orig_argv[1:]])
    from owsd.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
