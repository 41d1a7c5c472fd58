import multiprocessing
import os
import pickle
import stat
import time

import pytest
import torch

from owsd.components.generator import ScramblingGenerator
from owsd.components.key import KEY_BYTES, Key, load_key, load_or_create_key, save_key
from owsd.errors import KeyFileError
from tests.key_scan import assert_no_key_material, key_material


def test_generated_keys_are_256_bits_and_distinct():
    keys = {Key.generate().fingerprint for _ in range(100)}
    assert len(keys) == 100
    assert KEY_BYTES * 8 >= 256


def test_key_never_shows_its_secret():
    secret = bytes(range(32))
    key = Key(secret)
    for text in (repr(key), str(key), f"{key}", key.fingerprint):
        assert secret.hex() not in text and "\\x" not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_fingerprint_and_subkeys_are_deterministic_and_separated():
    key = Key(b"a" * 32)
    assert key.fingerprint == Key(b"a" * 32).fingerprint != Key(b"b" * 32).fingerprint
    assert key.derive("generator/0") == Key(b"a" * 32).derive("generator/0")
    assert key.derive("generator/0") != key.derive("generator/1") != key
    assert key.expand("x", 64)[:32] == key.expand("x", 32)
    assert key.expand("x", 32) != key.expand("y", 32)


def test_key_file_round_trip_with_owner_only_permissions(tmp_path):
    path = tmp_path / "sub" / "k.key"
    key = Key.generate()
    save_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key


def test_save_key_refuses_to_overwrite(tmp_path):
    path = tmp_path / "k.key"
    first = Key.generate()
    save_key(first, path)
    with pytest.raises(KeyFileError, match="already exists"):
        save_key(Key.generate(), path)
    assert load_key(path) == first


def test_load_key_rejects_loose_permissions(tmp_path):
    path = tmp_path / "k.key"
    save_key(Key.generate(), path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"k\.key has mode 0644"):
        load_key(path)


def test_load_key_rejects_wrong_size_and_missing_file(tmp_path):
    path = tmp_path / "short.key"
    path.write_bytes(b"x" * 16)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"short\.key holds 16 bytes"):
        load_key(path)
    with pytest.raises(KeyFileError, match=r"nothere\.key does not exist"):
        load_key(tmp_path / "nothere.key")


def _rank_opens_key(path, rank: str, delay: float, start, fingerprints) -> None:
    os.environ["RANK"] = rank
    start.wait()
    time.sleep(delay)
    key, created = load_or_create_key(path, create=True)
    fingerprints.put((rank, key.fingerprint, created))


def test_key_creation_is_race_free_across_processes(tmp_path):
    """Two processes that both think they are rank 0 (two runs started at once) end with one key between them.
    Neither ever reads an empty or half-written file."""
    ranks = (("0", 0.0), ("0", 0.0))
    path = tmp_path / "keys" / "shared.key"
    fork = multiprocessing.get_context("fork")
    start, fingerprints = fork.Barrier(len(ranks)), fork.Queue()
    workers = [fork.Process(target=_rank_opens_key, args=(path, r, d, start, fingerprints)) for r, d in ranks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    results = [fingerprints.get(timeout=5) for _ in workers]
    assert len({fingerprint for _, fingerprint, _ in results}) == 1
    assert sum(created for *_, created in results) == 1 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["shared.key"]  # no temporary file left behind


def test_another_rank_never_waits_for_a_missing_key_file(tmp_path, monkeypatch):
    """It reads the key only after rank 0 has made it (owsd.distributed), so a missing file is an error at once."""
    monkeypatch.setenv("RANK", "3")
    started = time.monotonic()
    with pytest.raises(KeyFileError, match=r"key file .*never.key does not exist on this node \(rank 3\)"):
        load_or_create_key(tmp_path / "never.key", create=True)
    assert time.monotonic() - started < 1 and not (tmp_path / "never.key").exists()


def test_the_key_scan_finds_the_key_its_subkeys_and_generator_weights_wherever_they_are_saved(tmp_path):
    key = Key.generate()
    forms = key_material(key, embedding_dim=24, size=32, channels=16)
    subkey = key.derive("generator/0")
    torch.save(ScramblingGenerator(subkey, 24, 32, 16).state_dict(), tmp_path / "weights.pt")
    (tmp_path / "subkey.txt").write_text(subkey._secret.hex())
    (tmp_path / "clean.txt").write_text(key.fingerprint)
    assert_no_key_material(forms, [tmp_path / "clean.txt"], text=f"key {key.fingerprint}")
    for leaked in ("weights.pt", "subkey.txt"):
        with pytest.raises(AssertionError, match="key material"):
            assert_no_key_material(forms, [tmp_path / leaked])
