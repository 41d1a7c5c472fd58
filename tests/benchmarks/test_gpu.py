"""`benchmarks/gpu.py` on the CPU with timm's tiny models: every stage measured, and clear refusals."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, without_process_environment

SCRIPT = REPO / "benchmarks" / "gpu.py"
STAGES = ("decode", "encoder", "generator", "cloud", "cache write")


def run(*args: str) -> subprocess.CompletedProcess:
    """The script as a user runs it (it re-executes itself with owsd's process settings), on one thread."""
    environment = {**without_process_environment(), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=240
    )


@pytest.mark.xdist_group("several_processes")  # its timing bound fails beside tests that start several processes
def test_tiny_cpu_run_measures_every_stage_of_every_configuration(tmp_path):
    out = tmp_path / "gpu.json"
    arguments = ["--device", "cpu", "--tiny", "--precisions", "fp32", "bf16", "--batch_sizes", "1", "2"]
    # Two rounds of one batch after one warm-up batch: bf16 runs at ~5 images/s on a CPU without bf16 instructions.
    arguments += ["--batches", "1", "--warmup", "1", "--repeats", "2", "--num_workers", "0", "--out", str(out)]
    # Shards go to memory where there is a tmpfs: fsync on this shared VM's disk stalls for up to 0.3 s at random.
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        arguments += ["--cache_dir", str(shm)]
    result = run(*arguments)
    assert result.returncode == 0, result.stderr

    numbers = json.loads(out.read_text())
    assert numbers["device"] == "cpu" and numbers["torch"] == torch.__version__ and numbers["device_name"]
    configurations = {(row["precision"], row["batch_size"]) for row in numbers["rows"]}
    assert configurations == {("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)}
    for row in numbers["rows"]:
        assert row["models"] == "tiny"
        assert set(row["stages"]) == set(STAGES) and all(row["stages"][stage] > 0 for stage in STAGES)
        ideal = 1 / sum(1 / rate for rate in row["stages"].values())
        assert row["ideal"] == pytest.approx(ideal, rel=1e-6) and row["pipeline"] > 0
        assert 0 < row["ratio"] <= 1.5 and row["ratio"] == pytest.approx(row["pipeline"] / row["ideal"])
        assert 0 < row["shipped_wall"] < row["shipped"], "the shipped predict loop, and the whole call around it"

    table = result.stdout.splitlines()
    header = next(line for line in table if line.startswith("models"))
    words = ("decode", "encoder", "generator", "cloud", "cache write", "ideal", "ratio", "shipped", "shipped wall")
    assert all(word in header for word in words)
    assert sum(line.startswith("tiny") for line in table) == 4
    log = [line for line in result.stderr.splitlines() if line.startswith("gpu.py: tiny")]
    assert len(log) == 4 and all("images/s" in line and "ratio" in line for line in log)


def test_cuda_is_refused_in_one_line_when_there_is_none(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as exit_:
        load_script().main(["--device", "cuda", "--tiny", "--out", str(tmp_path / "gpu.json")])
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "CUDA" in lines[0] and "Traceback" not in stderr
    assert not (tmp_path / "gpu.json").exists()


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    return gpu


def test_the_benchmark_times_the_pipelines_own_parts_and_bf16_leaves_the_bytes_exact(tmp_path):
    gpu = load_script()
    source = gpu.SyntheticSource(8, classes=2, image_size=32)
    stages = gpu.Stages("tiny", source, torch.device("cpu"), tmp_path)
    batch = gpu.HostBatches(source, 3)[0]
    with torch.inference_mode():
        embeddings = stages.encode(batch["image"])
        exact = stages.scramble(embeddings, batch["position"]).pixels
        stages.precision = "bf16-mixed"
        assert not torch.equal(stages.encode(batch["image"]), embeddings), "the encoder ran in bfloat16"
        assert torch.equal(stages.scramble(embeddings, batch["position"]).pixels, exact)
        stages.run(batch)
    assert exact.dtype == torch.uint8 and exact.shape == (3, 3, 32, 32)
    assert stages.pipeline.cache.read(["synthetic/0", "synthetic/2"]).embedding.shape == (2, embeddings.shape[1])
    (key,) = stages.cloud.ledger.keys()
    assert key.exposed == 3, "the cloud stage records what it sends, as precompute does"


def test_bf16_is_refused_where_the_device_cannot_autocast(monkeypatch, capsys):
    gpu = load_script()
    assert gpu.check_device(torch.device("cpu"), ["fp32", "bf16"])  # this CPU can
    monkeypatch.setattr(torch.amp.autocast_mode, "is_autocast_available", lambda device_type: False)
    gpu.check_device(torch.device("cpu"), ["fp32"])  # fp32 needs no autocast
    with pytest.raises(SystemExit) as exit_:
        gpu.check_device(torch.device("cpu"), ["fp32", "bf16"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "gpu.py: error: --precisions bf16 but torch cannot autocast on device type 'cpu'"
    ]
