"""A process of a distributed precompute that stops (killed, signalled, restarted by `torchrun`): every process
ends within seconds with one line, the finished shards are kept, and the same command (or `torchrun`'s restart)
resumes to the rows of an uninterrupted single-process run. Each case is bounded in time."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from owsd.distributed import precompute_trainer
from owsd.errors import ConfigError
from tests.conftest import REPO, owsd_process, run_owsd, tiny_args, torchrun_process
from tests.test_distributed import ONE_EPOCH, ONE_THREAD, owsd_lines, single_process_fit
from tests.test_precompute import assert_same_cache, cached

pytestmark = pytest.mark.xdist_group("several_processes")
# One batch of 2 images per half second: a precompute of the 20 tiny images that a test can stop mid-way.
SLOW = ["--data.cloud", "tests.helpers.SlowLocalCloud", "--data.cloud.init_args.name", "test_resnet",
        "--data.cloud.init_args.weights", "random", "--data.cloud.init_args.seconds", "0.5",
        "--data.precompute_batch_size", "2", *ONE_EPOCH]  # fmt: skip
# What SlowLocalCloud answers, at full speed: the uninterrupted run to compare with.
SAME_CLOUD = ["--data.cloud", "owsd.components.cloud.LocalCloud", "--data.cloud.init_args.name", "test_resnet",
              "--data.cloud.init_args.weights", "random", "--data.precompute_batch_size", "2"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    for name, value in ONE_THREAD.items():
        monkeypatch.setenv(name, value)


def wait_for_shards(cache_dir: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list(cache_dir.glob("*/shard-*.pt"))) < count:
        assert time.monotonic() < deadline, f"fewer than {count} shards in {cache_dir} after {timeout} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[list[str], dict]:
    """One single-process run at full speed: the key option every stopped run here uses, and its cached rows."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    single_process_fit(workdir, *SAME_CLOUD)
    return ["--data.scrambler.key_file", str(workdir / "keys" / "test.key")], cached(workdir)


def torchrun(args: list[str], *launcher_args: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node 2 LAUNCHER_ARGS -m owsd ARGS`, in its own process group."""
    return torchrun_process(["--standalone", "--nproc-per-node", "2", *launcher_args], args, env_extra,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip


def workers_by_rank(launcher: int) -> dict[int, int]:
    """The processes a launcher started from `launcher`, by the RANK in their environment."""
    found = {}
    for pid in children(launcher):
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if entry.startswith(b"RANK="):
                found[int(entry[5:])] = pid
    return found


def children(pid: int) -> list[int]:
    """The processes started from `pid` that run owsd."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"owsd" in command:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether `pid` is alive (a zombie that nobody has reaped yet has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ended_within(process: subprocess.Popen, seconds: float, workers: Iterable[int] = ()) -> str:
    """Its stderr once it ended; it and its workers (`torchrun` starts each in its own session) are killed, and
    the test fails, if it took longer."""
    try:
        return process.communicate(timeout=seconds)[1]
    except subprocess.TimeoutExpired:
        for pid in (process.pid, *workers, *children(process.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"still running {seconds} s after it was stopped")


def test_a_killed_rank_stops_the_run_within_seconds_and_the_same_command_resumes_to_the_same_rows(
    workdir, uninterrupted
):
    """Before: nothing bounded the other ranks' waits."""
    key, rows = uninterrupted
    args = tiny_args(workdir / "killed", *SLOW, *key, "--trainer.devices", "2")
    with owsd_process(args, ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir) as rank0:
        wait_for_shards(workdir / "killed" / "cache", 2)
        (rank1,) = children(rank0.pid)
        os.kill(rank1, signal.SIGKILL)
        killed = time.monotonic()
        stderr = ended_within(rank0, 60)
    assert time.monotonic() - killed < 15 and rank0.returncode != 0
    assert len(owsd_lines(stderr)) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert 0 < len(cached(workdir / "killed")) < 20, "the kill landed mid-way; finished shards kept"
    resumed = run_owsd(args, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_cache(cached(workdir / "killed"), rows)


def test_the_other_processes_stop_within_seconds_when_rank_zero_is_killed(workdir):
    """Before: a process Lightning's launcher started computed its whole share alone, then waited at the end."""
    args = tiny_args(workdir, *SLOW, "--trainer.devices", "2")
    with owsd_process(args, ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir) as rank0:
        wait_for_shards(workdir / "cache", 1)
        (rank1,) = children(rank0.pid)
        rank0.kill()
        killed = time.monotonic()
        stderr = ended_within(rank0, 60)  # the pipe closes when rank 1, which shares it, has ended too
    assert time.monotonic() - killed < 15 and not running(rank1)
    assert f"owsd: stopped by rank 0 (pid {rank0.pid}) ended" in stderr, stderr[-2000:]


@pytest.mark.parametrize("signalled, name", [("torchrun", "SIGINT"), ("rank 1", "SIGTERM")])
def test_a_signal_to_torchrun_or_to_one_rank_stops_every_rank_within_seconds_keeping_the_shards(
    workdir, signalled, name
):
    """Before: SIGTERM to one rank ran Lightning's handler, which tells the other ranks in a collective they
    never join: every process waited until the timeout (600 s)."""
    launcher = torchrun(tiny_args(workdir, *SLOW, "--trainer.devices", "2"))
    wait_for_shards(workdir / "cache", 2)
    ranks = workers_by_rank(launcher.pid)
    os.kill(launcher.pid if signalled == "torchrun" else ranks[1], getattr(signal, name))
    stopped = time.monotonic()
    stderr = ended_within(launcher, 30, ranks.values())
    assert time.monotonic() - stopped < 15 and launcher.returncode != 0
    assert not any(running(pid) for pid in ranks.values())
    # torchrun passes the signal it got on to both; otherwise it sends SIGTERM to the rank that is left
    lines = owsd_lines(stderr)
    assert lines == [f"owsd: stopped by {name}"] * 2, (
        lines,
        [line for line in stderr.splitlines() if "exitcode" in line],
    )
    assert f'File "{REPO}' not in stderr, "torchrun's own traceback only"
    assert 0 < len(cached(workdir)) < 20, "finished shards kept"


def test_torchrun_max_restarts_after_a_killed_rank_resumes_to_the_single_process_rows(workdir, uninterrupted):
    """`torchrun --max-restarts 1` restarts both ranks after one is killed; they resume from the cache."""
    key, rows = uninterrupted
    launcher = torchrun(tiny_args(workdir / "restarted", *SLOW, *key, "--trainer.devices", "2"), "--max-restarts", "1",
                        env_extra={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"})  # fmt: skip
    wait_for_shards(workdir / "restarted" / "cache", 2)
    ranks = workers_by_rank(launcher.pid)
    os.kill(ranks[1], signal.SIGKILL)
    stderr = ended_within(launcher, 120, ranks.values())
    assert launcher.returncode == 0, stderr[-3000:]
    planned = [int(n) for n in re.findall(r"(\d+) of 20 images to precompute", stderr)]
    assert planned[0] == 20 and 0 < planned[-1] < 20 and len(planned) == 2, stderr[-3000:]
    assert_same_cache(cached(workdir / "restarted"), rows)


def test_torchrun_restarts_over_its_shared_store_are_refused_in_one_line(monkeypatch):
    """Seen here: after a restart over the store torchrun shares by default, the new gloo group read the failed
    attempt's addresses and never formed; owsd waited until data.precompute_timeout."""
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "1")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"):
        precompute_trainer({"accelerator": "cpu", "devices": 2}, 10)
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")
    precompute_trainer({"accelerator": "cpu", "devices": 2}, 10)
