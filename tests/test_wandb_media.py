"""`owsd fit` with the offline wandb logger config: the run gets the config, scrambled images and a
confusion matrix, and none of its files holds the key."""

import json

from owsd.components.key import load_key
from owsd.components.timm_models import ModelSpec
from owsd.experiments.sweep import offline_summary
from owsd.wandb_media import flat_config
from tests.conftest import REPO, run_owsd, tiny_args
from tests.key_scan import assert_no_key_material, key_material

WANDB_CONFIG = REPO / "lightning_configs" / "loggers" / "wandb.yaml"


def test_flat_config_uses_the_dotted_names_of_sweep_parameters():
    config = {"model": {"hidden_size": 512}, "data": {"encoders": [{"name": "a"}], "split": {}}, "seed": 0}
    assert flat_config(config) == {
        "model.hidden_size": 512,
        "data.encoders": [{"name": "a"}],
        "data.split": {},
        "seed": 0,
    }


def test_offline_run_logs_config_scrambled_grid_and_confusion_matrix_but_never_the_key(workdir, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "online")  # the config's `offline: true` must win: there is no account here
    args = tiny_args(workdir, "--config", str(WANDB_CONFIG), "--trainer.logger.save_dir", str(workdir / "runs"))
    result = run_owsd(args)  # a process of its own: wandb completes the run's log when the process ends
    assert result.returncode == 0, result.stderr
    (run,) = (workdir / "runs" / "wandb").glob("offline-run-*")
    (grid,) = run.glob("files/media/images/test/scrambled_images_*.png")
    (matrix,) = run.glob("files/media/table/test/embedding+cloud/confusion_matrix_table_*.table.json")
    table = json.loads(matrix.read_text())
    assert table["columns"] == ["Actual", "Predicted", "nPredictions"]
    assert sum(row[2] for row in table["data"]) == 10  # every test image counted once
    (log,) = run.glob("run-*.wandb")
    assert b"model.hidden_size" in log.read_bytes() and b"data.scrambler.key_file" in log.read_bytes()
    assert offline_summary(log)["test/embedding+cloud/top1"] >= 0
    key = load_key(workdir / "keys" / "test.key")
    forms = key_material(key, ModelSpec("test_efficientnet", "random").embedding_dim, size=32, channels=64)
    files = [path for path in run.rglob("*") if path.is_file()]
    assert grid in files and len(files) >= 6
    assert_no_key_material(forms, files)
