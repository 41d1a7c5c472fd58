"""Writing files so that a reader, or a run killed half-way, never sees half of one; and files that identify
private images (cache rows, the key ledger) that only their owner can read, whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

OWNER_ONLY_FILE, OWNER_ONLY_FOLDER = 0o600, 0o700


def atomic_write(path: Path, write: Any, mode: int | None = None) -> None:
    """Call `write(temp_path)`, then move the result into place in one step (with `mode`, set before the move)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temp)
        if mode is not None:
            os.chmod(temp, mode)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def owner_only_folder(path: Path) -> Path:
    """`path` (and any missing parents) as a folder only its owner can list, read or enter."""
    for folder in reversed([path, *path.parents]):  # the folders it creates are its owner's too
        if not folder.exists():
            folder.mkdir(mode=OWNER_ONLY_FOLDER, exist_ok=True)  # mode & ~umask: never more than 0700
    os.chmod(path, OWNER_ONLY_FOLDER)  # one made earlier, or under a lax umask
    return path
