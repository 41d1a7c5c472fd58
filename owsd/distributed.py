"""What runs where when a command runs on several processes (Lightning's DDP launcher, `torchrun`, SLURM).

One rule. **Precompute is the only distributed stage**: rank 0 decides the work (the images the cache lacks, in
fixed batches) and broadcasts it, every rank checks that it sees what rank 0 sees, each takes every N-th batch
(a rank with none still takes part), and all meet at the end. **Everything after it runs on rank 0 alone**, on a
single-process Trainer: IIN fits and tests, baselines, records, output folders, tables. The other processes end
once the cache is full, so N processes print and write what one process does.

Precompute's meetings run over gloo, also on GPUs: what crosses them are small Python objects (the work, a
rank's verdict), no tensors, and a gloo peer that dies closes its socket, so the others fail at once instead of
waiting on NCCL's watchdog. Every meeting is bounded by `data.precompute_timeout`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy, Strategy
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher, _SubprocessScriptLauncher

from owsd.errors import ConfigError, OWSDError
from owsd.interrupts import stop_because
from owsd.ranks import launch_rank

T = TypeVar("T")

# The trainer settings precompute takes from the user's `trainer:` section; the rest (callbacks, loggers,
# epochs) belong to the IIN's training.
PRECOMPUTE_SETTINGS = ("accelerator", "strategy", "devices", "num_nodes", "precision", "plugins", "enable_progress_bar")
MULTI_PROCESS_NAMES = {"ddp", "auto"}  # strategy names owsd turns into gloo DDP with its own timeout


class PeerLostError(OWSDError):
    """Another process of a distributed precompute failed, was killed, or did not answer in time."""


def precompute_trainer(settings: dict[str, Any], timeout: float, launched: bool = True) -> Trainer:
    """The Trainer precompute runs on: the user's devices, nodes, strategy and precision, and nothing else.

    It logs and checkpoints nothing (its module's state would be the key's generators), shards the batches
    itself (Lightning's sampler would split a batch list it cannot divide with an assertion), and keeps its
    root in a private temporary folder: Lightning looks there for SLURM's `hpc_ckpt_*.ckpt` and saves them
    there, never beside a fit's checkpoints. A strategy that spawns processes is refused: they would need the
    key pickled. `ddp` (or `auto` on several devices) runs with gloo meetings bounded by `timeout` seconds.
    With `launched`, a launcher that started more processes than the settings count is refused: each would
    precompute everything and write the same files alone.
    """
    chosen = {name: settings[name] for name in PRECOMPUTE_SETTINGS if name in settings}
    common = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "use_distributed_sampler": False,
        "default_root_dir": tempfile.mkdtemp(prefix="owsd-precompute-"),
    }
    trainer = Trainer(**chosen, **common)
    if isinstance(trainer.strategy.launcher, _MultiProcessingLauncher):
        shutil.rmtree(common["default_root_dir"], ignore_errors=True)
        raise ConfigError(
            f"trainer.strategy={chosen.get('strategy')}: precompute runs with `ddp` (Lightning's launcher, torchrun "
            "or SLURM); spawned or forked processes would need the key pickled to them"
        )
    strategy = chosen.get("strategy", "auto")
    if isinstance(trainer.strategy, DDPStrategy) and isinstance(strategy, str) and strategy in MULTI_PROCESS_NAMES:
        gloo = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=timeout))
        trainer = Trainer(**{**chosen, "strategy": gloo}, **common)
    weakref.finalize(trainer, shutil.rmtree, common["default_root_dir"], ignore_errors=True)
    started = int(os.environ.get("WORLD_SIZE", trainer.world_size))
    if launched and started != trainer.world_size:
        raise ConfigError(
            f"a launcher started {started} processes, but trainer.devices × trainer.num_nodes gives "
            f"{trainer.world_size}: give --trainer.devices (processes per node) and --trainer.num_nodes (nodes) "
            "as the launcher has them"
        )
    if launched and trainer.world_size > 1 and restarts_meet_a_stale_store():
        raise ConfigError(
            "torchrun --max-restarts: start torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment; "
            "with the store torchrun shares by default, a restarted process reads the failed attempt's addresses "
            "and waits until data.precompute_timeout (pytorch/pytorch#135712)"
        )
    return trainer


def restarts_meet_a_stale_store() -> bool:
    """Whether `torchrun` may restart this process and hands it the store its rendezvous shares: seen here, a
    restarted gloo group connects to the previous attempt's addresses and never forms."""
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    return restarts > 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"


def single_process_settings(settings: dict[str, Any], precompute: Trainer) -> dict[str, Any]:
    """The `trainer:` settings for the stages after precompute, which run on rank 0 alone: one process on
    rank 0's own device, whatever devices, nodes and strategy precompute was given."""
    device = precompute.strategy.root_device
    devices = [device.index] if device.type == "cuda" and device.index is not None else 1
    return {**settings, "devices": devices, "num_nodes": 1, "strategy": "auto"}


def several_processes(trainer: Trainer) -> bool:
    return trainer.world_size > 1


def decided_by_rank_zero(strategy: Strategy, decide: Callable[[], T], check: Callable[[T], None]) -> T:
    """Rank 0 runs `decide`; every rank receives its result and runs `check` on it. If rank 0's decision or any
    rank's check raises an `OWSDError`, every rank raises one naming the first failure (its rank and host),
    so the whole run stops at once, before any image is sent."""
    decision, failure = None, None
    if strategy.global_rank == 0:
        try:
            decision = decide()
        except OWSDError as error:
            failure = error
    shared = call_collective(lambda: strategy.broadcast((decision, str(failure) if failure else None), src=0))
    decision, rank_zero_failure = shared
    if failure is not None:
        raise failure
    if rank_zero_failure is not None:
        raise ConfigError(f"rank 0 stopped: {rank_zero_failure}")
    problem = None
    try:
        check(decision)
    except OWSDError as error:
        problem = f"rank {strategy.global_rank} on {socket.gethostname()}: {error}"
    problems = [None] * strategy.world_size
    call_collective(lambda: torch.distributed.all_gather_object(problems, problem))
    found = next((p for p in problems if p is not None), None)
    if found is not None:
        raise ConfigError(found)
    return decision


def meet(strategy: Strategy, name: str) -> None:
    """Wait for every rank (bounded by the strategy's timeout); a rank that died ends the wait with one line."""
    call_collective(lambda: strategy.barrier(name))


def call_collective(collective: Callable[[], T]) -> T:
    """Run a collective; a peer that died or did not answer in time becomes a `PeerLostError` with one line."""
    with peers_answering(RuntimeError):
        return collective()


@contextmanager
def peers_answering(
    errors: type[BaseException] | tuple[type[BaseException], ...] = torch.distributed.DistError,
) -> Iterator[None]:
    """Turn a lost or absent peer (`torch.distributed`'s errors: a rendezvous that timed out, a closed socket)
    into one line naming this rank, the cause and what was kept."""
    try:
        yield
    except errors as error:
        cause = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise PeerLostError(
            f"rank {rank_of_this_process()} on {socket.gethostname()}: another process of this precompute "
            f"stopped or did not answer within data.precompute_timeout ({cause}); the finished shards are kept, "
            "run the same command again to resume"
        ) from None


def stop_started_processes(trainer: Trainer) -> None:
    """When rank 0 stops (an error, SIGINT, SIGTERM), it stops the processes Lightning's launcher started from it
    (`torchrun` and `srun` stop theirs themselves), so no rank computes on alone until the end meeting."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher) and getattr(launcher, "procs", None):
        launcher.kill(signal.SIGTERM)


def watch_the_other_processes(trainer: Trainer, period: float = 0.1) -> threading.Event:
    """Stop this process at once when a process it depends on ends: on rank 0, a process Lightning's
    launcher started that exits with an error (Lightning's own watcher would SIGKILL rank 0 without a word five
    seconds later); on those processes, rank 0 ending (nothing else would tell them before the end meeting).
    `torchrun` and `srun --kill-on-bad-exit` stop their own processes. Setting the event returned ends the watch.
    """
    launcher = trainer.strategy.launcher
    children = getattr(launcher, "procs", None) if isinstance(launcher, _SubprocessScriptLauncher) else None
    started_by_lightning = "LOCAL_RANK" in os.environ and not {"TORCHELASTIC_RUN_ID", "SLURM_PROCID"} & {*os.environ}
    parent = os.getppid()

    done = threading.Event()

    def watch() -> None:
        while not done.wait(period):
            for number, child in enumerate(children or (), 1):
                if child.poll() not in (None, 0):
                    stop_because(f"rank {number} (pid {child.pid}) ended with status {child.returncode}")
                    return
            if started_by_lightning and trainer.global_rank != 0 and os.getppid() != parent:
                stop_because(f"rank 0 (pid {parent}) ended")
                return

    if children or (started_by_lightning and trainer.global_rank != 0):
        threading.Thread(target=watch, name="owsd-rank-watch", daemon=True).start()
    return done


def rank_of_this_process() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return launch_rank()


def end_distributed(trainer: Trainer) -> None:
    """After precompute: close the process group (so nothing later, such as a metric's sync, waits for ranks
    that have gone), and end every process but rank 0 with exit status 0 and no output."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if trainer.global_rank != 0:
        end_this_process()


def end_this_process() -> NoReturn:
    """This process has done its share; rank 0 carries on alone."""
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(0)
