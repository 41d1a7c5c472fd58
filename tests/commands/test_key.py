"""`owsd key new|rotate|list` and the ledger that `owsd fit` fills, on the tiny CI config."""

import base64
import shutil
import stat

import pytest

from owsd.cli import main
from owsd.components.key import load_key
from owsd.components.ledger import KeyLedger
from tests.conftest import TINY_CONFIG, tiny_args


def exposures(workdir) -> dict[str, tuple[int, int, bool]]:
    return {k.fingerprint: (k.exposed, k.resends, k.retired) for k in KeyLedger(workdir / "ledger.sqlite", "t").keys()}


def key_forms(*paths) -> list[bytes]:
    secrets = [path.read_bytes() for path in paths]
    return [form for s in secrets for form in (s, s.hex().encode(), s.hex().upper().encode(), base64.b64encode(s))]


def test_fit_records_each_image_once_and_rotation_starts_a_new_key(workdir, capsys, caplog):
    key_file = workdir / "keys" / "test.key"
    main(tiny_args(workdir))  # 20 images, one encoder: 20 scrambled images sent
    first = load_key(key_file).fingerprint
    assert exposures(workdir) == {first: (20, 0, False)}
    main(tiny_args(workdir))  # cache hit: nothing sent, nothing recorded
    assert exposures(workdir) == {first: (20, 0, False)}

    main(["key", "rotate", "--config", str(TINY_CONFIG), "--data.scrambler.key_file", str(key_file),
          "--data.scrambler.ledger_file", str(workdir / "ledger.sqlite")])  # fmt: skip
    second = load_key(key_file).fingerprint
    kept = key_file.with_name(f"test.{first}.retired.key")
    assert second != first and load_key(kept).fingerprint == first
    assert stat.S_IMODE(kept.stat().st_mode) == stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert exposures(workdir) == {first: (20, 0, True), second: (0, 0, False)}

    caplog.clear()
    main(tiny_args(workdir))  # the cache is keyed by the key's fingerprint: precomputed again under the new key
    assert f"key {second}" in caplog.text and "20 of 20 images to precompute" in caplog.text
    assert exposures(workdir) == {first: (20, 0, True), second: (20, 0, False)}

    capsys.readouterr()
    main(["key", "list", "--ledger", str(workdir / "ledger.sqlite")])
    out = capsys.readouterr().out
    header, old, new = out.strip().splitlines()
    assert header.split()[:6] == ["fingerprint", "created", "exposed", "resends", "budget", "status"]
    assert old.startswith(first) and old.split()[3:7] == ["20", "0", "none", "retired"] and str(kept) in old
    assert new.startswith(second) and new.split()[3:7] == ["20", "0", "none", "active"]

    ledger_files = [p for p in workdir.iterdir() if p.name.startswith("ledger.sqlite")]
    written = b"".join(p.read_bytes() for p in ledger_files) + out.encode() + caplog.text.encode()
    assert first.encode() in written and not any(form in written for form in key_forms(key_file, kept))


def test_fit_beyond_the_key_budget_stops_before_anything_is_sent(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_args(workdir, "--data.scrambler.key_budget", "10"))
    fingerprint = load_key(workdir / "keys" / "test.key").fingerprint
    assert exit_info.value.code == 2
    assert f"key {fingerprint} has exposed 0 images and this run may send up to 20 more" in capsys.readouterr().err
    assert exposures(workdir) == {fingerprint: (0, 0, False)}
    assert not list((workdir / "cache").rglob("shard-*.pt"))


def test_key_new_and_its_keygen_alias_print_only_the_fingerprint(workdir, capsys):
    main(["key", "new", "a.key"])
    main(["keygen", "b.key"])
    out = capsys.readouterr().out
    for name in ("a.key", "b.key"):
        assert f"wrote key {load_key(workdir / name).fingerprint} to {name}" in out
    assert not any(form in out.encode() for form in key_forms(workdir / "a.key", workdir / "b.key"))


def test_listing_without_a_ledger_is_one_clear_line(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["key", "list", "--ledger", "none.sqlite"])
    assert exit_info.value.code == 2 and "no key ledger at none.sqlite" in capsys.readouterr().err


def test_a_budget_is_bound_to_the_key_and_changed_by_key_budget(workdir, capsys):
    main(tiny_args(workdir, "--data.scrambler.key_budget", "30"))  # 20 images sent: the budget is now the key's
    fingerprint = load_key(workdir / "keys" / "test.key").fingerprint
    ledger = str(workdir / "ledger.sqlite")
    shutil.rmtree(workdir / "cache")  # so the next run sends again
    with pytest.raises(SystemExit) as exit_info:  # another number in the config changes nothing
        main(tiny_args(workdir, "--data.scrambler.key_budget", "1000"))
    assert exit_info.value.code == 2
    assert f"key {fingerprint} has a budget of 30 images" in capsys.readouterr().err
    main(["key", "budget", fingerprint, "1000", "--ledger", ledger])
    assert f"key {fingerprint} has a budget of 1000 images; 20 exposed so far" in capsys.readouterr().out
    main(["key", "budget", fingerprint, "none", "--ledger", ledger])
    assert f"key {fingerprint} has no limit; 20 exposed so far" in capsys.readouterr().out
    main(["key", "list", "--ledger", ledger])
    assert capsys.readouterr().out.splitlines()[1].split()[3:6] == ["20", "0", "none"]
    with pytest.raises(SystemExit) as exit_info:
        main(["key", "budget", "0123456789abcdef", "5", "--ledger", ledger])
    assert exit_info.value.code == 2 and "knows no key 0123456789abcdef" in capsys.readouterr().err
