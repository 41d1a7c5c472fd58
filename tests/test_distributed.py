"""Several processes and nodes (`owsd.distributed`): the same cache, table and records as one process, every
failure one line within seconds, and no key-derived bytes in what Lightning saves. Nodes are simulated with
`torchrun --nnodes 2` on loopback (gloo, CPU); every process is bounded in time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from owsd.cli import main
from owsd.components.ledger import KeyLedger
from owsd.distributed import precompute_trainer
from owsd.errors import ConfigError
from owsd.precompute import PrecomputeModule, plan_work
from tests.conftest import (
    MNIST_TINY_CONFIG,
    REPO,
    TINY_IMAGES,
    free_port,
    one_rank_output,
    run_owsd,
    run_torchrun,
    tiny_args,
    torchrun_process,
    without_process_environment,
)
from tests.key_scan import assert_no_key_material, key_material
from tests.test_precompute import assert_same_cache, cached, ledger_keys

# Several processes per test: never beside the other tests of the group (the GPU benchmark's timing bound).
pytestmark = pytest.mark.xdist_group("several_processes")
ONE_EPOCH = ["--trainer.max_epochs", "1"]
# One BLAS thread per process in every run compared: a different thread count alone may change the last float bit.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def torchrun_nodes(node_args: list[list[str]], cwd: Path, timeout: float = 240) -> list[subprocess.CompletedProcess]:
    """`torchrun --nnodes N --node_rank i --nproc-per-node 1` around `owsd`, one launcher per simulated node."""
    port, launchers = free_port(), []
    for rank, args in enumerate(node_args):
        launcher = ["--nnodes", str(len(node_args)), "--node_rank", str(rank), "--nproc-per-node", "1",
                    "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
        launchers.append(torchrun_process(launcher, args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    finished = []
    for launcher in launchers:
        stdout, stderr = launcher.communicate(timeout=timeout)
        finished.append(subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr))
    return finished


def owsd_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("owsd: ")]


def single_process_fit(workdir: Path, *args: str) -> str:
    """What the tiny fit in `workdir` printed: the run that launches of several processes are compared with."""
    return one_rank_output(tiny_args(workdir, *ONE_EPOCH, *args))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[Path, str]:
    """The single-process fit the launches are compared with: its folder (key, cache) and what it printed."""
    folder = tmp_path_factory.mktemp("one-process") / "one"
    return folder, single_process_fit(folder)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    for name, value in ONE_THREAD.items():
        monkeypatch.setenv(name, value)


def test_two_devices_fill_the_single_process_cache_and_print_its_table_once(workdir, one_process):
    """Before: the IIN was trained and tested on both ranks (padded test batches, each rank's own early
    stopping) and both printed."""
    one_folder, one = one_process
    same_key = ["--data.scrambler.key_file", str(one_folder / "keys" / "test.key")]
    two = run_owsd(tiny_args(workdir / "two", *ONE_EPOCH, *same_key, "--trainer.devices", "2"), cwd=workdir)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "rank 0 precomputed 12 images" in two.stderr and "rank 1 precomputed 8 images" in two.stderr
    assert [(key.exposed, key.resends) for key in ledger_keys(workdir / "two")] == [(20, 0)], "both ranks recorded"
    assert two.stdout == one and two.stdout.count("OWSD test accuracy") == 1
    assert_same_cache(cached(workdir / "two"), cached(one_folder))
    assert len(list((workdir / "two" / "runs" / "lightning_logs").iterdir())) == 1, "one fit, on rank 0"
    # the README's sbatch line, `srun owsd fit … --trainer.devices 2` on one node, with srun's environment
    tasks = srun(tiny_args(workdir / "srun", *ONE_EPOCH, *same_key, "--trainer.devices", "2"), cwd=workdir)
    assert [task.returncode for task in tasks] == [0, 0], tasks[0].stderr[-2000:] + tasks[1].stderr[-2000:]
    assert tasks[0].stdout == one and tasks[1].stdout == ""
    assert_same_cache(cached(workdir / "srun"), cached(one_folder))
    assert [(key.exposed, key.resends) for key in ledger_keys(workdir / "srun")] == [(20, 0)]


def srun(args: list[str], cwd: Path, tasks: int = 2) -> list[subprocess.CompletedProcess]:
    """`owsd ARGS` as `srun --ntasks-per-node TASKS` starts it on one node: one process per task, with the
    variables SLURM gives each (no SLURM here; Lightning's `SLURMEnvironment` reads exactly these)."""
    slurm = {"SLURM_NTASKS": str(tasks), "SLURM_NTASKS_PER_NODE": str(tasks), "SLURM_NNODES": "1",
             "SLURM_NODEID": "0", "SLURM_JOB_NAME": "owsd", "SLURM_JOB_ID": "4242", "SLURM_NODELIST": "127.0.0.1",
             "MASTER_PORT": str(free_port())}  # fmt: skip
    started = []
    for task in range(tasks):
        env = {**without_process_environment(), "PYTHONPATH": str(REPO), **ONE_THREAD, **slurm,
               "SLURM_PROCID": str(task), "SLURM_LOCALID": str(task)}  # fmt: skip
        started.append(subprocess.Popen([sys.executable, "-m", "owsd", *args], cwd=cwd, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    finished = []
    for process in started:
        stdout, stderr = process.communicate(timeout=240)
        finished.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return finished


def test_run_with_one_batch_over_two_ranks_records_each_repetition_once(workdir):
    """Before: rank 1 died in Lightning's sampler with one batch for two ranks (AssertionError), and `run`
    recorded every repetition once per rank."""
    run = ["--experiment.seeds=[0,1]", "--data.precompute_batch_size", "20", "--out", str(workdir / "out")]
    done = run_owsd(tiny_args(workdir, *ONE_EPOCH, *run, "--trainer.devices", "2", subcommand="run"), cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1: no batch left to it" in done.stderr and "Traceback" not in done.stderr
    records = (workdir / "out" / "runs.jsonl").read_text().splitlines()
    assert len(records) == 2 and not (workdir / "out.partial").exists()
    main(["report", str(workdir / "out"), "--out", str(workdir / "report")])  # one process reads the records
    table = (workdir / "report" / "README.md").read_text()
    assert "2/2" in table and "4/" not in table


def test_two_nodes_give_the_single_process_table_and_count_each_image_once_in_a_shared_ledger(
    workdir, postgres_url, one_process
):
    """Before: both nodes trained, tested and printed; the other node's numbers differed from one process's."""
    one_folder, one = one_process
    shared = ["--data.scrambler.key_file", str(one_folder / "keys" / "test.key"),
              "--data.scrambler.ledger_file", postgres_url]  # fmt: skip
    args = tiny_args(workdir / "two", *ONE_EPOCH, *shared, "--trainer.num_nodes", "2", "--trainer.strategy", "ddp")
    node0, node1 = torchrun_nodes([args, args], cwd=workdir)
    assert node0.returncode == 0 and node1.returncode == 0, node0.stderr[-2000:] + node1.stderr[-2000:]
    assert node0.stdout == one and node1.stdout == ""
    assert_same_cache(cached(workdir / "two"), cached(one_folder))
    (key,) = KeyLedger(postgres_url, "test").keys()
    assert (key.exposed, key.resends) == (20, 0)
    # Before: `run` on two nodes recorded every repetition on both, then rank 1 crashed and rank 0 hung.
    run = tiny_args(workdir / "two", *ONE_EPOCH, *shared, "--trainer.num_nodes", "2", "--trainer.strategy", "ddp",
                    "--experiment.seeds=[0,1]", "--out", str(workdir / "out"), subcommand="run")  # fmt: skip
    node0, node1 = torchrun_nodes([run, run], cwd=workdir)
    assert node0.returncode == 0 and node1.returncode == 0, node0.stderr[-2000:] + node1.stderr[-2000:]
    assert len((workdir / "out" / "runs.jsonl").read_text().splitlines()) == 2 and node1.stdout == ""
    assert not (workdir / "out.partial").exists() and "resuming" not in node1.stderr


def test_a_node_that_does_not_see_rank_zeros_cache_folder_stops_every_node_within_seconds(workdir, postgres_url):
    """Before: with node-local folders rank 1 waited forever for a key file, and rank 0 in a collective. Every
    other difference a node may have (key file, generator, images) is found by the same check and stops the
    launch the same way: `test_precompute.py` checks each of them in one process."""
    args = tiny_args(workdir, *ONE_EPOCH, "--data.scrambler.ledger_file", postgres_url, "--trainer.num_nodes", "2",
                     "--trainer.strategy", "ddp", "--data.precompute_timeout", "60")  # fmt: skip
    started = time.monotonic()
    node_local = ["--data.cache_dir", str(workdir / "node1" / "cache")]
    node0, node1 = torchrun_nodes([args, [*args, *node_local]], cwd=workdir, timeout=120)
    assert time.monotonic() - started < 50, "stopped by the check, not by the 60 s timeout"
    for node in (node0, node1):
        assert node.returncode != 0
        (line,) = owsd_lines(node.stderr)
        assert re.search(
            r"does not see rank 0's cache folder .*several nodes need data.cache_dir on a filesystem", line
        ), line
        assert 'Traceback (most recent call last):\n  File "' + str(REPO) not in node.stderr
    assert not list((workdir / "cache").glob("*/shard-*.pt")), "nothing was sent"


def test_a_node_that_never_comes_stops_rank_zero_within_the_timeout(workdir, postgres_url):
    """Before: a rendezvous waited for 30 minutes (torch's default), then ended in a traceback."""
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "NODE_RANK": "0"}
    args = tiny_args(workdir, *ONE_EPOCH, "--data.scrambler.ledger_file", postgres_url, "--trainer.num_nodes", "2",
                     "--trainer.strategy", "ddp", "--data.precompute_timeout", "3")  # fmt: skip
    started = time.monotonic()
    done = run_owsd(args, cwd=workdir, env_extra=env, timeout=120)
    assert time.monotonic() - started < 60
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = owsd_lines(done.stderr)
    assert "rank 0" in line and "data.precompute_timeout" in line and "1/2 clients joined" in line


def test_analyze_on_two_torchrun_processes_writes_and_prints_what_one_process_does(workdir):
    """Before: both ranks ran it into one output folder."""

    args = ["analyze", "--config", str(MNIST_TINY_CONFIG), "--analysis.keys.seed", "7", "--analysis.keys.count", "1"]
    one = one_rank_output([*args, "--out", "one"])
    two = run_torchrun([*args, "--out", "two"], cwd=workdir)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout == one
    assert (workdir / "two" / "analysis.json").read_text() == (workdir / "one" / "analysis.json").read_text()


@pytest.mark.parametrize("command", ["attack", "analyze", "predict", "report", "train-cloud"])
def test_commands_that_run_on_rank_zero_alone_end_at_once_on_another_rank(workdir, monkeypatch, capsys, command):
    """Before: every rank of a launch ran them and wrote the same output folder."""
    monkeypatch.setenv("RANK", "1")
    main([command, "--config", str(workdir / "no-such.yaml"), "--out", str(workdir / "out")])
    assert capsys.readouterr() == ("", "") and list(workdir.iterdir()) == []


def test_a_spawning_strategy_is_refused_in_one_line(workdir, capsys):
    """Before: `ddp_spawn` failed with a traceback, pickling the key."""
    with pytest.raises(SystemExit) as exit_:
        main(tiny_args(workdir, "--trainer.devices", "2", "--trainer.strategy", "ddp_spawn"))
    assert exit_.value.code == 2
    assert "trainer.strategy=ddp_spawn: precompute runs with `ddp`" in capsys.readouterr().err
    assert not (workdir / "cache").exists()


def test_a_launch_of_more_processes_than_the_trainer_counts_is_refused(monkeypatch):
    """Before: `torchrun --nproc-per-node 2` without `--trainer.devices 2` ran two whole commands, each alone."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="a launcher started 2 processes, but trainer.devices × trainer.num_nodes"):
        precompute_trainer({"accelerator": "cpu", "devices": 1}, 10)
    precompute_trainer({"accelerator": "cpu", "devices": 2}, 10)


def test_a_sqlite_ledger_is_refused_under_several_nodes(workdir):
    from tests.test_pipeline import tiny_pipeline

    pipeline = tiny_pipeline(workdir)
    several = precompute_trainer({"accelerator": "cpu", "devices": 1, "num_nodes": 2, "strategy": "ddp"}, 10)
    with pytest.raises(ConfigError, match="is a SQLite file, and this precompute runs on 2 nodes"):
        plan_work(pipeline, list(range(20)), several)
    assert not (workdir / "ledger.sqlite").exists()


def test_a_checkpoint_lightning_saves_of_precompute_holds_no_key_material(workdir):
    """What SLURM's requeue handler saves (`trainer.save_checkpoint` mid-precompute): no generator weights."""
    from tests.test_pipeline import tiny_pipeline

    pipeline = tiny_pipeline(workdir)
    trainer = precompute_trainer({"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}, 10)
    saved = workdir / "requeue.ckpt"

    class SaveMidway(PrecomputeModule):
        def on_predict_batch_end(self, outputs, batch, batch_idx):
            super().on_predict_batch_end(outputs, batch, batch_idx)
            self.trainer.save_checkpoint(saved)

    module = SaveMidway(pipeline, list(range(20)), plan_work(pipeline, list(range(20)), trainer))
    trainer.predict(module, return_predictions=False)
    assert torch.load(saved, weights_only=False)["state_dict"] == {}
    # nor does Lightning's DDP send them to the other ranks (its `_sync_module_states` outside `fit`)
    # (the generators themselves are built at the first batch, after that sync)
    every = {name for name, _ in chain(module.named_parameters(), module.named_buffers())}
    built_in_setup = {name for name in every if ".generators." not in name}
    assert built_in_setup and set(module._ddp_params_and_buffers_to_ignore) == built_in_setup
    forms = key_material(pipeline.key(), embedding_dim=pipeline.encoders[0].embedding_dim, size=32, channels=16)
    assert_no_key_material(forms, [saved])
    assert Path(trainer.default_root_dir) != Path.cwd() and "owsd-precompute-" in str(trainer.default_root_dir)


def test_the_folder_source_names_the_same_cache_wherever_it_is_mounted(tmp_path):
    from owsd.data.sources import ImageFolderSource

    elsewhere = tmp_path / "mounted" / "here"
    elsewhere.parent.mkdir()
    os.symlink(TINY_IMAGES, elsewhere)  # the same files, seen at another absolute path
    assert ImageFolderSource(elsewhere).identity == ImageFolderSource(TINY_IMAGES).identity


def test_single_process_trainer_settings_keep_rank_zeros_device():
    from owsd.distributed import single_process_settings

    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    settings = single_process_settings({"devices": 2, "max_epochs": 3}, trainer)
    assert settings == {"devices": 1, "num_nodes": 1, "strategy": "auto", "max_epochs": 3}
