"""`RemoteCloud` against a third-party server: Seldon MLServer (the `interop` extra) with a small custom runtime
(`tests/serving/mlserver_runtime.py`) serving the same tiny model as the reference server."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
import torch

from owsd.components.generator import ScrambledImages
from owsd.serving.client import RemoteCloud
from tests.conftest import REPO
from tests.serving.conftest import MODEL, free_port, in_process

# CI installs the `interop` extra, so there a missing MLServer fails instead of skipping
if not os.environ.get("CI") and importlib.util.find_spec("mlserver") is None:
    pytest.skip("mlserver is not installed (the interop extra)", allow_module_level=True)


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    """`mlserver start` on loopback, serving MODEL as `tiny` through the custom runtime, once the model is ready."""
    root = tmp_path_factory.mktemp("mlserver")
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port}
    (root / "settings.json").write_text(json.dumps({**settings, "parallel_workers": 0}))
    (root / "tiny").mkdir()
    model_settings = {
        "name": "tiny",
        "implementation": "tests.serving.mlserver_runtime.TimmCloud",
        "parameters": {"uri": MODEL},
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, 3, -1, -1]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 1000]}],
    }
    (root / "tiny" / "model-settings.json").write_text(json.dumps(model_settings))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from mlserver.cli import main; main()", "start", str(root)]
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "MLServer did not get ready in 90 s"
            try:
                if httpx.get(f"{url}/v2/models/tiny/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.kill()
        process.wait(20)
        process.stderr.close()


def test_remote_cloud_against_mlserver_answers_what_the_in_process_cloud_does(mlserver, images):
    client = RemoteCloud(mlserver, "tiny", batch_size=4, concurrency=2).open()
    assert client.binary is False  # MLServer supports no binary tensors, and does not advertise them
    assert (client.input_name, client.output_name, client.num_classes) == ("images", "probabilities", 1000)
    probabilities = client(ScrambledImages(torch.from_numpy(images), "fingerprint"))
    torch.testing.assert_close(probabilities, torch.from_numpy(in_process(images, 4)), atol=1e-6, rtol=0)
