"""Writing files so that a reader, or a run killed half-way, never sees half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(temp_path)`, then move the result into place in one step."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
