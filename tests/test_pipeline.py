"""The pipeline: one per config, the cache it names (pinned for the demo and CI configs), precision and its refusals."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from owsd.commands.settings import experiment_parser, parse
from owsd.components.cloud import LocalCloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.cache import fingerprint
from owsd.data.sources import ImageFolderSource
from owsd.errors import ConfigError
from owsd.pipeline import Pipeline, normalised_precision
from owsd.precompute import fill_cache
from tests.conftest import REPO, TINY_CONFIG, TINY_IMAGES

DEMO_CONFIG = REPO / "lightning_configs" / "demo.yaml"
# Cache folder names (and description hashes) made by the code before the Pipeline existed, with this key.
PINNED_KEY = bytes(range(32))
DEMO_CACHE = "9ddc5a94e9dff299"
# The CI config's, with its files' stamps (a clone's own) taken out. It changed from 7a6aeefc00fca1ba on purpose
# when the folder's identity went from file sizes to size and mtime, and from cef095351ce356ef when the folder's
# absolute path left it (nodes mounting the images at different paths share one cache).
CI_DESCRIPTION = "e3ea84652640b292"


def configured_pipeline(config: Path, tmp_path: Path, *overrides: str) -> Pipeline:
    key = tmp_path / "pinned.key"
    if not key.exists():
        key.write_bytes(PINNED_KEY)
        key.chmod(0o600)
    args = ["pin", "--config", str(config), "--data.scrambler.key_file", str(key), *overrides]
    _, objects, _ = parse(experiment_parser("pin", "pinned fingerprints", out=False), args)
    return objects.data.pipeline


def test_the_demo_cache_made_before_is_the_one_taken_over(tmp_path):
    """Its name now holds the preprocessing digest; the folder an older owsd made is taken over by that name."""
    from owsd.components.timm_models import without_preprocessing_marks
    from owsd.data.cache import PairCache

    cache = configured_pipeline(DEMO_CONFIG, tmp_path).cache
    former = {key: value for key, value in cache.description.items() if key != "format"}
    assert PairCache(tmp_path, without_preprocessing_marks(former)).directory.name == DEMO_CACHE


def test_the_ci_cache_keeps_its_description(tmp_path):
    pipeline = configured_pipeline(TINY_CONFIG, tmp_path, "--data.source.init_args.root", str(TINY_IMAGES))
    description = pipeline.cache.description
    assert set(description["source"]) == {"kind", "items_sha256", "file_stamps_sha256"}  # no absolute path
    source = {**description["source"], "file_stamps_sha256": "STAMPS"}
    assert fingerprint({**description, "source": source}) == CI_DESCRIPTION


def test_precision_names_another_cache_and_contract(tmp_path):
    full = configured_pipeline(TINY_CONFIG, tmp_path, "--data.source.init_args.root", str(TINY_IMAGES))
    half = configured_pipeline(
        TINY_CONFIG, tmp_path, "--data.source.init_args.root", str(TINY_IMAGES), "--trainer.precision", "bf16-mixed"
    )
    assert half.precision == "bf16-mixed" and "precision" not in full.contract
    assert half.contract == {**full.contract, "precision": "bf16-mixed"}
    assert half.cache.directory != full.cache.directory


def test_an_encoders_embeddings_are_cached_apart_from_the_key_and_the_cloud(tmp_path):
    tiny = ["--data.source.init_args.root", str(TINY_IMAGES)]
    pipeline = configured_pipeline(TINY_CONFIG, tmp_path, *tiny)
    (embeddings,) = pipeline.embedding_caches
    assert embeddings.directory.parent == pipeline.cache_dir / "embeddings"
    assert set(embeddings.description) == {"format", "source", "image_size", "encoder"}
    other_cloud = ["--data.cloud", "owsd.components.cloud.LocalCloud", "--data.cloud.init_args.name", "test_resnet"]
    other = pipeline.replace(
        scrambler=replace(pipeline.scrambler, key_file=tmp_path / "other.key", create_key=True),
        cloud=configured_pipeline(TINY_CONFIG, tmp_path, *tiny, *other_cloud).cloud,
    )
    assert other.cache.directory != pipeline.cache.directory
    assert [cache.directory for cache in other.embedding_caches] == [embeddings.directory]
    ensemble = pipeline.replace(encoders=[*pipeline.encoders, ModelSpec("test_resnet", "random")])
    assert ensemble.embedding_caches[0].directory == embeddings.directory
    changed = [
        pipeline.replace(image_size=32),
        pipeline.replace(encoders=[ModelSpec("test_efficientnet", "random", input_size=48)]),
        pipeline.replace(precision="bf16-mixed"),
    ]
    folders = {embeddings.directory, *(p.embedding_caches[0].directory for p in changed)}
    assert len(folders) == 4, "image size, input size and precision each change an embedding"


@pytest.mark.parametrize(
    "spelling, meaning", [(None, "32-true"), (32, "32-true"), ("bf16", "bf16-mixed"), ("16", "16-mixed")]
)
def test_precisions_are_named_as_lightning_names_them(spelling, meaning):
    assert normalised_precision(spelling) == meaning


@pytest.mark.parametrize("precision", ["bf16-true", "16-true", "64-true", "8"])
def test_a_precision_that_would_round_the_generator_is_refused(precision):
    with pytest.raises(ConfigError, match=f"trainer.precision='{precision}'"):
        normalised_precision(precision)


def tiny_pipeline(tmp_path: Path, source: Path = TINY_IMAGES, scrambler: dict | None = None, **settings) -> Pipeline:
    """The tiny images' pipeline in `tmp_path`: its key created there; `scrambler` overrides key settings."""
    key = {"create_key": True, "size": 32, "channels": 16, "ledger_file": tmp_path / "ledger.sqlite"}
    return Pipeline(
        ImageFolderSource(source),
        [ModelSpec("test_efficientnet", "random")],
        LocalCloud("test_resnet", "random"),
        ScramblerSettings(**{"key_file": tmp_path / "k.key", **key, **(scrambler or {})}),
        image_size=32,
        cache_dir=tmp_path / "cache",
        precompute_batch_size=8,
        **settings,
    )


def test_16_mixed_on_a_cpu_is_refused_before_anything_is_sent(tmp_path):
    pipeline = tiny_pipeline(tmp_path, precision="16-mixed")
    trainer = Trainer(accelerator="cpu", precision="16-mixed", logger=False, enable_progress_bar=False)
    with pytest.raises(
        ConfigError, match="trainer.precision=16-mixed, but the Trainer on the CPUAccelerator runs at bf16"
    ):
        fill_cache(pipeline, list(range(20)), trainer)
    assert not (tmp_path / "ledger.sqlite").exists() and not pipeline.cache.directory.exists()


def test_bf16_precompute_sends_the_bytes_of_float32_embeddings(tmp_path):
    """The encoders run in bfloat16; the generator scrambles their (rounded) embeddings in float32, so the
    bytes sent are exactly the float32 generator's for the embeddings cached."""
    pipeline = tiny_pipeline(tmp_path, precision="bf16-mixed")
    trainer = Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_progress_bar=False)
    fill_cache(pipeline, list(range(20)), trainer)
    rows = pipeline.cache.read(pipeline.image_ids(list(range(20))))
    (scrambler,) = pipeline.scramblers()
    embeddings = rows.embedding
    assert embeddings.dtype == torch.float32
    assert torch.equal(embeddings, embeddings.bfloat16().float()), "the encoder ran in bfloat16"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = scrambler.scramble(embeddings, rows.image_ids, list(range(20))).pixels
    assert torch.equal(under_autocast, scrambler.scramble(embeddings, rows.image_ids, list(range(20))).pixels)


@pytest.mark.parametrize("workers", [-1, 10_000])
def test_more_decoding_workers_than_cores_is_refused(tmp_path, workers):
    with pytest.raises(ConfigError, match=f"data.num_workers={workers}"):
        tiny_pipeline(tmp_path, num_workers=workers)


def test_a_cache_and_a_checkpoint_made_before_preprocessing_counted_are_taken_over(tmp_path):
    """What an older owsd made with file, PyPI or pretrained weights (named without their preprocessing)
    stays usable: its cache is renamed with its rows, its checkpoints' contracts still match."""
    from owsd.components.timm_models import without_preprocessing_marks
    from owsd.data.cache import PairCache

    weights = tmp_path / "encoder.pt"
    torch.save(ModelSpec("test_efficientnet", "random").build().state_dict(), weights)
    pipeline = tiny_pipeline(tmp_path).replace(encoders=[ModelSpec("test_efficientnet", str(weights))])
    description = {"source": pipeline.source.identity, **pipeline.contract, "plaintext_baseline": False}
    older = PairCache(pipeline.cache_dir, without_preprocessing_marks(description))
    assert older.directory.name != fingerprint({"format": 1, **description}), "the name changed"
    older.prepare()
    ids = pipeline.image_ids([0, 1])
    older.write_shard(ids, torch.tensor([0, 1]), {"embedding": torch.ones(2, 4), "cloud": torch.ones(2, 3)})
    assert pipeline.cache.missing(ids) == [] and not older.directory.exists()
    assert PairCache.existing(pipeline.cache.directory).description == pipeline.cache.description
    assert pipeline.contract_difference(without_preprocessing_marks(pipeline.contract), "an older checkpoint") is None
    other = {
        **pipeline.contract,
        "encoders": [{**pipeline.contract["encoders"][0], "weights": "sha256-0+preprocess-00000000"}],
    }
    assert "encoders (data.encoders)" in pipeline.contract_difference(other, "a checkpoint")
