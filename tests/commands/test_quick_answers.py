"""A missing or broken `--config` and a command's `--help` are answered without importing Lightning."""

import os
import subprocess
import sys

import pytest

from owsd.cli import main
from tests.conftest import REPO, refusal

PROBE = """
import sys
from owsd.cli import main
try:
    main({args!r})
except SystemExit as exit_:
    print(f"exit {{exit_.code}}", file=sys.stderr)
print("imported:" + "".join(" " + name for name in ("torch", "lightning") if name in sys.modules), file=sys.stderr)
"""


def fresh(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`owsd ARGS` through `owsd.cli.main` in a fresh interpreter, reporting its exit and the heavy imports it made."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                          env=environment, timeout=120)  # fmt: skip


@pytest.mark.parametrize("command", ["fit", "run", "attack", "analyze", "train-cloud"])
def test_a_missing_or_broken_config_is_refused_before_lightning_is_imported(tmp_path, command):
    """Before: every such command took 6-7 s on an idle machine (12-38 s under load) to say so."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  batch_size: [1,\n")
    for config, says in ((tmp_path / "nothere.yaml", "nothere.yaml does not exist"), (broken, "line 3, column 1")):
        result = fresh([command, "--config", str(config), "--out", str(tmp_path / "out")])
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("owsd: error: --config") and says in lines[0], result.stderr
        assert lines[1:] == ["exit 2", "imported:"], result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.yaml"]


def test_an_unreadable_config_is_one_line(workdir, capsys):
    (workdir / "folder.yaml").mkdir()
    assert "--config folder.yaml cannot be read" in refusal(["fit", "--config", "folder.yaml"], capsys)


def test_help_is_kept_after_its_first_printing_and_then_printed_without_lightning(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    first = capsys.readouterr().out
    assert exit_.value.code == 0 and "--data.scrambler.key_file" in first
    again = fresh(["fit", "--help"], {"XDG_CACHE_HOME": str(tmp_path)})
    assert again.stdout == first and again.stderr.strip().splitlines() == ["exit 0", "imported:"]
