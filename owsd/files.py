"""Writing files so that a reader, or a run killed half-way, never sees half of one; and files that identify
private images (cache rows, the key ledger) that only their owner can read, whatever the umask."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from owsd.errors import ConfigError, first_line

OWNER_ONLY_FILE, OWNER_ONLY_FOLDER = 0o600, 0o700
log = logging.getLogger(__name__)


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


def file_sha256(path: Path) -> str:
    """sha256 of a file, read a megabyte at a time (packs and weights are too large to read at once)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def owner_only_folder(path: Path) -> Path:
    """`path` (and any missing parents) as a folder only its owner can list, read or enter."""
    for folder in reversed([path, *path.parents]):  # the folders it creates are its owner's too
        if not folder.exists():
            folder.mkdir(mode=OWNER_ONLY_FOLDER, exist_ok=True)  # mode & ~umask: never more than 0700
    os.chmod(path, OWNER_ONLY_FOLDER)  # one made earlier, or under a lax umask
    return path


def check_writable(path: Path, setting: str, folder: bool = True) -> None:
    """Refuse, in one line naming `setting`, a path owsd would create or write but cannot: a file where a folder
    goes (or the reverse), or a nearest existing folder the user may not write (permissions, a read-only
    filesystem). Checked before anything is created, so a refused run leaves no key, ledger or cache behind."""
    try:
        _check_writable(path, setting, folder)
    except PermissionError as error:  # a folder on the way the user may not enter
        raise ConfigError(f"{setting}: cannot reach {error.filename or path} (permission denied)") from None


def _check_writable(path: Path, setting: str, folder: bool) -> None:
    if path.exists() and path.is_dir() != folder:
        raise ConfigError(f"{setting}: {path} is {'a file, not a folder' if folder else 'a folder, not a file'}")
    existing = path if path.exists() and folder else path.parent
    while not existing.exists():  # where the missing folders would be created
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{setting}: {existing} is a file, so {path} cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        why = "it is on a read-only filesystem" if read_only else "you may not write in it"
        raise ConfigError(f"{setting}: cannot write in {existing} ({why}); choose a folder you can write")


def set_aside(paths: list[Path], error: BaseException, consequence: str) -> None:
    """Damaged files owsd can make again, renamed `*.damaged` (kept for inspection), and one warning naming the
    first, the cause and what happens instead (`consequence`: "its images are computed again")."""
    for path in paths:
        if path.exists():
            os.replace(path, path.with_name(f"{path.name}.damaged"))
    log.warning(
        "%s is damaged (%s): set aside as %s.damaged; %s", paths[0], first_line(error), paths[0].name, consequence
    )


def read_record(path: Path, consequence: str) -> Any | None:
    """A JSON record of finished work (None if there is none); a damaged one is set aside and read as none,
    so the work it recorded is done again."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        set_aside([path], error, consequence)
        return None
