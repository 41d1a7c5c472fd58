import pickle
import stat

import pytest

from owsd.components.key import KEY_BYTES, Key, load_key, save_key
from owsd.errors import KeyFileError


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
