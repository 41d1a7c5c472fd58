"""Writing files so that a reader, or a run killed half-way, never sees half of one; and files that identify
private images (cache rows, the key ledger) that only their owner can read, whatever the umask."""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

OWNER_ONLY_FILE, OWNER_ONLY_FOLDER = 0o600, 0o700


def atomic_write(path: Path, write: Any, mode: int | None = None) -> None:
    """Call `write(temp_path)`, then move the result into place in one step (with `mode`, set before the move)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")  # unique across hosts too
    try:
        write(temp)
        if mode is not None:
            os.chmod(temp, mode)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def atomic_torch_save(path: Path, state: Any, mode: int | None = None) -> None:
    """`torch.save` through `atomic_write`, serialised in memory first: saved to a path, torch names its archive
    after the (per-process, temporary) file, so the same state would give other bytes in every process, and a
    checkpoint named by its hash another name each time."""
    import torch  # here, not at the top: `owsd key` imports this module and must not import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda temp: temp.write_bytes(buffer.getvalue()), mode)


def append_json_lines(path: Path, rows: list[Any]) -> None:
    """Append one JSON line per row, on disk (fsync) before the caller goes on to the next piece of work."""
    with open(path, "a") as lines:
        lines.write("".join(json.dumps(row) + "\n" for row in rows))
        lines.flush()
        os.fsync(lines.fileno())


def read_json_lines(path: Path) -> list[Any]:
    """The rows `append_json_lines` wrote (none if there is no file). A last line cut short by a kill is
    dropped, and the file rewritten without it, so the next append starts on a whole line."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def owner_only_folder(path: Path) -> Path:
    """`path` (and any missing parents) as a folder only its owner can list, read or enter."""
    for folder in reversed([path, *path.parents]):  # the folders it creates are its owner's too
        if not folder.exists():
            folder.mkdir(mode=OWNER_ONLY_FOLDER, exist_ok=True)  # mode & ~umask: never more than 0700
    os.chmod(path, OWNER_ONLY_FOLDER)  # one made earlier, or under a lax umask
    return path
