"""Precompute through `owsd serve-cloud` survives the server being killed mid-way and restarted on the same port:
the client's retries carry the run to the cache of an undisturbed run, and the ledger counts each image once."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import one_rank_output, owsd_process, tiny_args
from tests.serving.conftest import free_port
from tests.test_precompute import assert_same_cache, cached, ledger_keys

NAME = "tiny"


@contextmanager
def serve_cloud(port: int) -> Iterator[subprocess.Popen]:
    """`owsd serve-cloud` of the tiny random `test_resnet` on 127.0.0.1:`port`, once it is ready."""
    args = ["serve-cloud", "--model", "test_resnet", "--weights", "random", "--name", NAME, "--port", str(port)]
    process = owsd_process(args, stderr=subprocess.PIPE)
    try:
        line = process.stderr.readline()
        assert re.fullmatch(rf"serving {NAME} on http://127\.0\.0\.1:{port}\n", line), line
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(20)
        process.stderr.close()


def test_a_server_killed_mid_precompute_and_restarted_is_waited_for(workdir, monkeypatch):
    # One BLAS thread per process in both runs: a different thread count alone may change the last float bit.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    port = free_port()
    remote = ["--data.cloud", "owsd.serving.client.RemoteCloud", "--data.plaintext_baseline", "false"]
    remote += ["--data.cloud.init_args.url", f"http://127.0.0.1:{port}", "--data.cloud.init_args.model", NAME]
    # 150 retries of at most 0.5 s: a restarted server may take a minute to import torch on a loaded machine
    # (40 retries, ~14 s, ran out once in CI while other jobs shared the 2 cores)
    remote += ["--data.cloud.init_args.retries", "150", "--data.cloud.init_args.backoff", "0.2"]
    remote += ["--data.cloud.init_args.max_backoff", "0.5", "--data.cloud.init_args.timeout", "10"]
    # 5 precompute batches (one shard and one request each), so a kill at the first shard lands mid-way.
    remote += ["--data.precompute_batch_size", "4", "--trainer.max_epochs", "1"]
    with serve_cloud(port) as first:
        one_rank_output(tiny_args(workdir / "straight", *remote))  # on the killed run's one thread
        same_key = ["--data.scrambler.key_file", str(workdir / "straight" / "keys" / "test.key")]
        args = tiny_args(workdir / "killed", *remote, *same_key)
        run = owsd_process(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not (shards := list((workdir / "killed" / "cache").rglob("shard-*.pt"))):
                assert time.monotonic() < deadline and run.poll() is None, "no shard appeared"
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            assert len(shards) < 5, "the kill landed mid-way"
            time.sleep(0.5)
            with serve_cloud(port):
                _, stderr = run.communicate(timeout=150)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert run.returncode == 0, stderr[-3000:]
    assert re.search(rf"cloud at http://127\.0\.0\.1:{port}: \w+.*; retry 1 of 150", stderr), stderr[-3000:]
    assert_same_cache(cached(workdir / "killed"), cached(workdir / "straight"))
    # Every image exposed once; each retried request (its answer may have been lost) counts its images again as
    # resends of the same bytes, never as new exposures.
    ((exposed, resends),) = [(key.exposed, key.resends) for key in ledger_keys(workdir / "killed")]
    assert exposed == 20 and resends > 0
    assert [(key.exposed, key.resends) for key in ledger_keys(workdir / "straight")] == [(20, 0)]
