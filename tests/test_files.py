"""Files that identify private images are their owner's only, whatever the umask: cache folders 0700, cache
rows, manifests and the key ledger 0600."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from owsd.cli import main
from owsd.components.scrambler import ScramblerSettings
from owsd.files import OWNER_ONLY_FILE, atomic_torch_save, atomic_write, owner_only_folder
from owsd.pipeline import check_paths
from tests.conftest import REPO, refusal, row_caches, tiny_args


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


@pytest.mark.parametrize(
    "setting, make",
    [
        ("data.cache_dir", lambda w: (w / "taken").write_text("a file")),
        ("data.scrambler.key_file", lambda w: (w / "taken").mkdir()),
        ("data.scrambler.ledger_file", lambda w: (w / "taken").mkdir()),
        ("--out", lambda w: (w / "taken").write_text("a file")),
    ],
)
def test_a_path_taken_by_the_wrong_kind_is_one_line_before_anything_is_created(workdir, capsys, setting, make):
    """Before: `--data.cache_dir` naming a file ended in NotADirectoryError, after the key and the ledger were
    created."""
    make(workdir)
    args = tiny_args(workdir, f"--{setting}" if setting != "--out" else "--out", str(workdir / "taken"))
    stderr = refusal(["run", *args[1:]] if setting == "--out" else args, capsys)
    assert f"{setting}: {workdir / 'taken'} is a" in stderr and "Traceback" not in stderr
    assert sorted(path.name for path in workdir.iterdir()) == ["taken"]  # no key, ledger or cache


def as_nobody(check) -> str:
    """What `check()` raised (its message), run in a forked child that dropped root for user `nobody`."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: drop privileges, run the check, report, and never return into pytest
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            check()
            os.write(write, b"no error")
        except BaseException as error:  # noqa: BLE001 (whatever it was, the parent reports it)
            os.write(write, f"{type(error).__name__}: {error}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        said = pipe.read()
    os.waitpid(child, 0)
    return said


@pytest.mark.skipif(os.geteuid() != 0, reason="drops root for another user")
def test_a_folder_the_user_may_not_write_is_named_before_anything_is_created():
    """Before: a cache folder the user could not write ended in PermissionError (as a non-root user)."""
    base = Path(tempfile.mkdtemp(dir=Path(tempfile.gettempdir())))  # pytest's own folders are root's alone
    base.chmod(0o755)
    locked, shared = base / "locked", base / "shared"
    locked.mkdir(mode=0o755)
    shared.mkdir()
    shared.chmod(0o777)
    try:
        check_as_nobody(locked, shared)
    finally:
        shutil.rmtree(base)


def check_as_nobody(locked: Path, shared: Path) -> None:
    scrambler = ScramblerSettings(key_file=shared / "k.key", create_key=True, ledger_file=str(shared / "l.sqlite"))
    said = as_nobody(lambda: check_paths(locked / "cache", scrambler))
    assert (
        said
        == f"ConfigError: data.cache_dir: cannot write in {locked} (you may not write in it); choose a folder you can write"
    )
    said = as_nobody(lambda: check_paths(shared / "cache", replace(scrambler, key_file=locked / "k.key")))
    assert said.startswith(f"ConfigError: data.scrambler.key_file: cannot write in {locked}")
    assert as_nobody(lambda: check_paths(shared / "cache", scrambler)) == "no error"
    assert list(shared.iterdir()) == [] and list(locked.iterdir()) == []


def test_a_read_only_filesystem_is_named(tmp_path):
    """A read-only bind mount, in a user and mount namespace of its own (`unshare`)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("no unshare here")
    folder = tmp_path / "ro"
    folder.mkdir()
    check = f"from owsd.files import check_writable; check_writable(__import__('pathlib').Path('{folder}/cache'), 'data.cache_dir')"
    script = f'mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && {sys.executable} -c "{check}"'
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert f"ConfigError: data.cache_dir: cannot write in {folder} (it is on a read-only filesystem)" in result.stderr
