"""How many threads torch gets: sized to the work, not to the machine.

torch defaults to one OpenMP thread per core. For the small dense networks here each parallel region is
a few microseconds of work, so extra threads mostly wait on each other; when other processes keep the
cores busy, a thread that has lost its core stalls every region for a scheduler time slice. Measured on
a loaded 2-core VM: a tiny IIN fit took 51 s on 2 threads and 5.3 s on 1 (`benchmarks/busy_machine.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

SMALL_MODEL_THREADS = 1
"""Threads for the IIN and the attacks' small models: they gain nothing from more threads, and lose a lot
(up to 10× in our measurements) when the machine is busy, as each thread then waits for the slowest."""


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to `count`; the previous count comes back on
    exit, also on an exception, so a small model's setting never leaks into the big models' precompute.

    torch is imported here, not with this module, so settings may name `SMALL_MODEL_THREADS` cheaply.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"a thread count is a positive integer, got {count!r}")
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
