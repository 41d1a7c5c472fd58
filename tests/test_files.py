"""Files that identify private images are their owner's only, whatever the umask: cache folders 0700, cache
rows, manifests and the key ledger 0600."""

import os
import stat
from pathlib import Path

import pytest
import torch

from owsd.cli import main
from owsd.files import OWNER_ONLY_FILE, atomic_torch_save, atomic_write, owner_only_folder
from tests.conftest import row_caches, tiny_args


@pytest.fixture
def lax_umask():
    previous = os.umask(0o022)  # the common default: new files world-readable
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_cache_and_ledger_are_the_owners_only(workdir, lax_umask):
    main(tiny_args(workdir, "--trainer.max_epochs", "1"))
    (folder,) = row_caches(workdir / "cache")
    (embeddings,) = (workdir / "cache" / "embeddings").iterdir()
    assert mode(workdir / "cache") == mode(folder) == mode(embeddings.parent) == mode(embeddings) == 0o700
    for cache, kinds in [(folder, {"manifest", "pack"}), (embeddings, {"manifest", "shard"})]:
        files = [path for path in cache.iterdir() if path.name != ".lock"]
        assert {path.name.split("-")[0].split(".")[0] for path in files} == kinds
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    ledger = workdir / "ledger.sqlite"
    beside = [path for path in workdir.iterdir() if path.name.startswith("ledger.sqlite")]
    assert ledger in beside and {mode(path) for path in beside} == {0o600}


def test_an_existing_lax_folder_and_file_are_tightened(tmp_path, lax_umask):
    folder = tmp_path / "old-cache"
    folder.mkdir(mode=0o755)
    assert mode(owner_only_folder(folder)) == 0o700
    atomic_write(folder / "rows", lambda path: path.write_text("x"), 0o600)
    atomic_write(folder / "report.md", lambda path: path.write_text("x"))  # results keep the umask's mode
    assert mode(folder / "rows") == 0o600 and mode(folder / "report.md") == 0o644


def test_the_same_state_saved_twice_is_the_same_bytes_and_the_owners_only(tmp_path, lax_umask):
    state = {"weights": torch.arange(6.0).view(2, 3), "classes": ["a", "b"]}
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    for path in (first, second):
        atomic_torch_save(path, state, OWNER_ONLY_FILE)
    assert first.read_bytes() == second.read_bytes()  # torch.save to a path would name each archive after its file
    assert stat.S_IMODE(first.stat().st_mode) == OWNER_ONLY_FILE
    assert torch.equal(torch.load(second, weights_only=True, mmap=True)["weights"], state["weights"])


def test_atomic_writes_of_one_pid_use_different_temporary_names(tmp_path, monkeypatch):
    """Before: `.NAME.PID.tmp`, unique on one host only; two nodes' processes with one PID on a shared
    filesystem (every rank wrote the cache's manifest) would write into each other's temporary file."""
    moved = []
    replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda source, target: (moved.append(Path(source).name), replace(source, target))
    )
    for _ in range(2):
        atomic_write(tmp_path / "manifest.json", lambda path: path.write_text("{}"))
    assert len(set(moved)) == 2 and all(str(os.getpid()) in name for name in moved)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
