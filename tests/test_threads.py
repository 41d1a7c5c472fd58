"""`torch_threads` sets and restores torch's thread count; `python -m owsd` runs with OpenMP workers that sleep."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from owsd.__main__ import KEEP_FREED_MEMORY, PROCESS_ENVIRONMENT, reexec_environment
from owsd.threads import SMALL_MODEL_THREADS, torch_threads
from tests.conftest import REPO, without_process_environment


@pytest.fixture
def two_threads():
    """Start from a known count other than 1, so setting 1 is visible; leave torch as it was."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_torch_threads_sets_the_count_inside_and_restores_it_after(two_threads):
    with torch_threads(SMALL_MODEL_THREADS):
        assert torch.get_num_threads() == SMALL_MODEL_THREADS == 1
        torch.ones(64, 64) @ torch.ones(64, 64)
    assert torch.get_num_threads() == 2


def test_torch_threads_restores_the_count_after_an_exception(two_threads):
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_torch_threads_nests(two_threads):
    with torch_threads(1):
        with torch_threads(3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_torch_threads_refuses_a_count_that_is_not_a_positive_integer(two_threads, count):
    with pytest.raises(ValueError, match="positive integer"):
        with torch_threads(count):
            pass
    assert torch.get_num_threads() == 2


def test_reexec_environment_adds_the_passive_wait_policy_and_the_malloc_tunables():
    environment = reexec_environment({"PATH": "/bin"})
    assert environment == {"PATH": "/bin", **KEEP_FREED_MEMORY, "OMP_WAIT_POLICY": "PASSIVE"}


def test_reexec_environment_keeps_the_users_own_values():
    environment = reexec_environment({"OMP_WAIT_POLICY": "ACTIVE", "MALLOC_TRIM_THRESHOLD_": "1"})
    assert environment["OMP_WAIT_POLICY"] == "ACTIVE" and environment["MALLOC_TRIM_THRESHOLD_"] == "1"
    assert environment["MALLOC_MMAP_THRESHOLD_"] == KEEP_FREED_MEMORY["MALLOC_MMAP_THRESHOLD_"]


def test_reexec_environment_is_none_once_everything_is_set():
    """No second re-exec: the re-executed process finds its settings in place."""
    assert reexec_environment(dict(PROCESS_ENVIRONMENT)) is None
    assert reexec_environment({**KEEP_FREED_MEMORY}) is not None  # malloc set by the user, wait policy not yet


# Loaded by every Python process of the child's tree (the first one and its re-exec): once the command has
# run, prints what the process that ran it had in its environment.
SITECUSTOMIZE = """
import atexit, os, sys
atexit.register(lambda: print("ENV", os.environ.get("OMP_WAIT_POLICY"), os.environ.get("MALLOC_MMAP_THRESHOLD_"),
                              file=sys.stderr))
"""


def owsd_environment(tmp_path, **settings: str) -> list[str]:
    """`OMP_WAIT_POLICY` and `MALLOC_MMAP_THRESHOLD_` as `python -m owsd --help` saw them, started with `settings`."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    environment = without_process_environment()
    environment.update(settings, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    result = subprocess.run(
        [sys.executable, "-m", "owsd", "--help"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split()[1:] for line in result.stderr.splitlines() if line.startswith("ENV ")]
    assert len(lines) == 1, result.stderr  # atexit never runs in the process that exec'd
    return lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec is Linux-only")
def test_python_m_owsd_runs_with_the_passive_wait_policy(tmp_path):
    assert owsd_environment(tmp_path) == ["PASSIVE", KEEP_FREED_MEMORY["MALLOC_MMAP_THRESHOLD_"]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec is Linux-only")
def test_python_m_owsd_keeps_a_wait_policy_the_user_set(tmp_path):
    malloc = KEEP_FREED_MEMORY["MALLOC_MMAP_THRESHOLD_"]
    assert owsd_environment(tmp_path, OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", malloc]
    assert owsd_environment(tmp_path, **KEEP_FREED_MEMORY) == ["PASSIVE", malloc]  # re-executed for the policy alone
