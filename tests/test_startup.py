"""`owsd --help`, `owsd key new` and `owsd key list` start without loading torch, Lightning, timm or jsonargparse.

Those imports cost 10–30 s on a loaded machine; a key command needs none of them. Wall times are left to
`benchmarks/busy_machine.py` (a shared machine makes them too noisy to assert).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_owsd, without_process_environment

HEAVY = ("torch", "lightning", "timm", "jsonargparse")

# Runs the CLI in-process, then reports which heavy packages it loaded (also when the command exits).
PROBE = f"""
import json, sys
from owsd.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps({{"code": code, "loaded": [name for name in {HEAVY!r} if name in sys.modules]}}), file=sys.stderr)
"""


def heavy_imports(args: list[str]) -> tuple[int, list[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report["code"], report["loaded"]


@pytest.mark.parametrize("command", ["help", "key new", "key list", "keygen"])
def test_key_commands_and_help_load_no_heavy_package(tmp_path, command):
    args = {
        "help": ["--help"],
        "key new": ["key", "new", str(tmp_path / "a.key")],
        "key list": ["key", "list", "--ledger", str(tmp_path / "missing.sqlite")],  # exits 2: no ledger yet
        "keygen": ["keygen", str(tmp_path / "b.key")],
    }[command]
    code, loaded = heavy_imports(args)
    assert code in (0, 2) and loaded == []


def test_key_list_of_a_real_ledger_loads_no_heavy_package(tmp_path):
    from owsd.components.ledger import KeyLedger

    ledger = tmp_path / "ledger.sqlite"
    KeyLedger(ledger, "test").register("0123456789abcdef", tmp_path / "k.key", 0.0, 5)
    code, loaded = heavy_imports(["key", "list", "--ledger", str(ledger)])
    assert code == 0 and loaded == []


def test_python_m_owsd_key_new_imports_nothing_heavy_even_after_its_re_exec(tmp_path):
    """`-X importtime` survives the re-exec with the malloc tunables, so this sees the process that runs."""
    result = run_owsd(["key", "new", str(tmp_path / "c.key")], timeout=120)
    assert result.returncode == 0 and "wrote key" in result.stdout
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "owsd", "key", "new", str(tmp_path / "d.key")],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=without_process_environment(),
    )  # fmt: skip
    assert traced.returncode == 0, traced.stderr
    lines = [line for line in traced.stderr.splitlines() if line.startswith("import time:")]
    modules = {line.rsplit("|", 1)[-1].strip() for line in lines}
    assert "owsd.components.ledger" in modules, "the traced process is the one that ran the command"
    assert not modules & set(HEAVY)


def test_lightning_loggers_are_quieted_when_lightning_is_imported_after_logging_is_configured():
    """Commands that train still hide Lightning's INFO banners, though logging no longer imports Lightning."""
    probe = (
        "import logging, sys\n"
        "from owsd.cli import configure_logging\n"
        "configure_logging()\n"
        "assert 'lightning' not in sys.modules\n"
        "import lightning.pytorch\n"
        "print([logging.getLogger(n).level for n in ('lightning', 'lightning.pytorch', 'lightning.fabric')])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([30, 30, 30])  # logging.WARNING
