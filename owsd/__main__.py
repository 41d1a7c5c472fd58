"""The `owsd` command. Sets glibc's malloc tunables, then runs the CLI.

Batches allocate tensors of tens of MB; by default glibc hands each back to the OS on free and the
next batch page-faults it in again. On VMs (such as 2-core cloud machines) that kernel work costs more
than the convolutions: precompute ran 8× and IIN training 1.5× slower in our measurements. The
tunables must be set before the process starts, so the command re-executes itself once with them
(values already in the environment win).
"""

import os
import sys

KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"}


def keep_freed_memory(command: list[str]) -> None:
    """Re-execute `command` (this process's own) with the tunables, unless they are already set."""
    if sys.platform.startswith("linux") and not KEEP_FREED_MEMORY.keys() <= os.environ.keys():
        os.execve(command[0], command, {**KEEP_FREED_MEMORY, **os.environ})


def main() -> None:
    keep_freed_memory([sys.executable, "-m", "owsd", *sys.argv[1:]])
    from owsd.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
