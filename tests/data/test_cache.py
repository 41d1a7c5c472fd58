import re
from pathlib import Path

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


def test_every_reader_in_a_process_maps_one_table(tmp_path):
    """Splits, seeds and recipes read the same memory-mapped rows: no copy per reader."""
    cache = PairCache.shared(tmp_path, {"what": "shared"})
    cache.prepare()
    cache.write_shard(["a", "b", "c"], torch.tensor([0, 1, 2]), rows(3))
    assert PairCache.shared(tmp_path, {"what": "shared"}) is cache
    first, second = cache.read(["a", "b"]), cache.read(["c"])
    assert first.table is second.table
    (pack,) = cache.directory.glob("pack-*.bin")
    assert str(pack.resolve()) in Path("/proc/self/maps").read_text(), "a file mapping, not a heap copy"
    assert sorted(p.name for p in cache.directory.glob("shard-*")) == [], "the shards were packed"


def test_a_grown_cache_packs_old_and_new_rows_together(tmp_path):
    cache = PairCache(tmp_path, {})
    cache.prepare()
    cache.write_shard(["a", "b"], torch.tensor([0, 1]), rows(2))
    before = cache.read(["a", "b"]).embedding
    cache.write_shard(["c"], torch.tensor([2]), rows(1, offset=2))
    cache.write_shard(["a"], torch.tensor([0]), rows(1, offset=9))  # a duplicate keeps its first row
    read = cache.read(["a", "b", "c"])
    assert torch.equal(read.embedding[:2], before) and read.embedding[2, 0] == 2.0
    assert read.labels.tolist() == [0, 1, 2]
    assert sorted(p.name for p in cache.directory.iterdir() if p.name != ".lock") == [
        "manifest.json",
        "pack-1.bin",
        "pack-1.json",
    ]
    assert PairCache.existing(cache.directory).read(["c"]).embedding[0, 0] == 2.0


def test_a_damaged_shard_is_named_set_aside_and_only_its_images_are_missing(tmp_path, caplog):
    """Before: a bare RuntimeError from torch on every later run, without the file's name."""
    cache = PairCache(tmp_path, {})
    cache.prepare()
    cache.write_shard(["a", "b"], torch.tensor([0, 1]), rows(2))
    damaged = cache.write_shard(["c"], torch.tensor([2]), rows(1, offset=2))
    damaged.write_bytes(damaged.read_bytes()[:100])  # a copy cut short
    assert PairCache(tmp_path, {}).missing(["a", "b", "c"]) == ["c"]  # what this run computes again
    (warning,) = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert re.fullmatch(rf".*{damaged.name} is damaged .*: set aside as .*\.damaged; .*again", warning)
    assert (damaged.parent / f"{damaged.name}.damaged").exists()
    assert PairCache(tmp_path, {}).read(["a", "b"]).embedding[:, 0].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("damage", ["header", "data", "flipped byte"])
def test_a_damaged_pack_is_named_set_aside_and_its_images_are_missing(tmp_path, caplog, damage):
    cache = PairCache(tmp_path, {})
    cache.prepare()
    cache.write_shard(["a", "b"], torch.tensor([0, 1]), rows(2))
    cache.table()  # packed
    (header,) = cache.directory.glob("pack-*.json")
    target = header if damage == "header" else header.with_suffix(".bin")
    data = target.read_bytes()
    if damage == "flipped byte":  # same size: only the digest in the header tells
        target.write_bytes(data[:5] + bytes([data[5] ^ 1]) + data[6:])
    else:
        target.write_bytes(data[:-3])
    assert PairCache(tmp_path, {}).missing(["a", "b"]) == ["a", "b"]
    assert f"{target.name} is damaged" in caplog.text  # the file at fault is named
    damaged = {p.name for p in cache.directory.glob("*.damaged")}
    assert damaged == {f"{header.name}.damaged", f"{header.stem}.bin.damaged"}
