import pytest
import torch

from owsd.data.cache import PairCache
from owsd.errors import DataError


def rows(n: int, offset: int = 0) -> dict[str, torch.Tensor]:
    return {"embedding": torch.arange(offset, offset + n).float()[:, None].repeat(1, 4), "cloud": torch.rand(n, 3)}


def test_rows_are_read_back_by_image_id_in_any_order(tmp_path):
    cache = PairCache(tmp_path, {"what": "test"})
    cache.prepare()
    cache.write_shard(["a", "b"], torch.tensor([0, 1]), rows(2))
    cache.write_shard(["c"], torch.tensor([2]), rows(1, offset=2))
    read = cache.read(["c", "a"])
    assert read.image_ids == ["c", "a"]
    assert read.labels.tolist() == [2, 0] and read.embedding[:, 0].tolist() == [2.0, 0.0]
    assert read.plaintext_cloud is None
    assert cache.missing(["a", "d", "c"]) == ["d"]


def test_description_names_the_directory_and_is_recorded(tmp_path):
    first, second = PairCache(tmp_path, {"key": "1"}), PairCache(tmp_path, {"key": "2"})
    assert first.directory != second.directory
    first.prepare()
    assert '"key": "1"' in (first.directory / "manifest.json").read_text()


def test_shards_are_written_atomically_without_leftovers(tmp_path):
    cache = PairCache(tmp_path, {})
    cache.prepare()
    cache.write_shard(["a"], torch.tensor([0]), rows(1))
    assert sorted(p.name[:6] for p in cache.directory.iterdir()) == ["manife", "shard-"]
    # A fresh reader (another process) sees the same rows.
    assert PairCache(tmp_path, {}).missing(["a"]) == []


def test_reading_an_incomplete_cache_names_what_is_missing(tmp_path):
    cache = PairCache(tmp_path, {})
    cache.prepare()
    cache.write_shard(["a"], torch.tensor([0]), rows(1))
    with pytest.raises(DataError, match="lacks 1 images, e.g. b; precompute them"):
        cache.read(["a", "b"])
