"""This process's rank as its launcher set it (torchrun, SLURM's srun, Lightning's DDP launcher), read from the
environment alone: `owsd key` and `owsd --help` must decide without importing torch."""

from __future__ import annotations

import os


def launch_rank() -> int:
    """This process's global rank under torchrun, SLURM or Lightning's DDP launcher (0 when launched alone)."""
    for variable in ("RANK", "SLURM_PROCID"):
        if variable in os.environ:
            return int(os.environ[variable])
    return int(os.environ.get("NODE_RANK", 0)) + int(os.environ.get("LOCAL_RANK", 0))


def launched_as_other_rank() -> bool:
    """Whether a launcher started this process as a rank other than 0. Commands that never precompute run on
    rank 0 alone; the others end at once (`owsd.cli`)."""
    return launch_rank() != 0
