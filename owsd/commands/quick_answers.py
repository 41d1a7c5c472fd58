"""Answers a command gives before it imports Lightning (5 s of a 6-7 s start on an idle 2-core machine).

A `--config` file that is missing, unreadable or not YAML is refused at once. `--help` of a command whose
parser is built from Lightning's signatures is printed from a cache of the text that parser printed last,
kept per (command, Python, owsd's sources, the versions of the libraries that shape the options): the first
`owsd fit --help` of an installation takes the full start, every later one none of it."""

import hashlib
import io
import os
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from importlib import metadata
from pathlib import Path

import yaml

from owsd.commands.parse_errors import config_files, yaml_syntax
from owsd.errors import ConfigError

_SHAPING = ("lightning", "jsonargparse", "torch", "timm", "torchmetrics")  # whose signatures become options
_OWSD = Path(__file__).resolve().parents[1]


def check_config_files(arguments: list[str]) -> None:
    """Refuse, in one line, a `--config` that is missing, unreadable or not YAML (with its line and column)."""
    for path in config_files(arguments):
        try:
            yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"--config {path} does not exist") from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
            raise ConfigError(f"--config {path} cannot be read ({type(error).__name__}: {error.args[-1]})") from None
        except yaml.MarkedYAMLError as error:
            raise ConfigError(f"--config {path}{yaml_syntax(error)}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"--config {path} is not YAML ({error})") from None


def help_cache(command: str) -> Path:
    """Where the help text of `command` is kept for this installation."""
    key = hashlib.sha256(sys.version.encode())
    for name in ("owsd", *_SHAPING):
        try:
            key.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            key.update(f"{name}=none".encode())
    for source in sorted(_OWSD.rglob("*.py")):  # a working copy's edits change options without a new version
        status = source.stat()
        key.update(f"{source.relative_to(_OWSD)}:{status.st_size}:{status.st_mtime_ns}".encode())
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "owsd" / "help" / f"{command}-{key.hexdigest()[:16]}.txt"


def print_help(command: str, show: Callable[[], None]) -> None:
    """Print `command`'s help from the cache, or run `show` (which prints it and exits 0) and keep what it printed."""
    kept = help_cache(command)
    if kept.is_file():
        sys.stdout.write(kept.read_text())
        raise SystemExit(0)
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            show()
    except SystemExit as exit_:
        sys.stdout.write(printed.getvalue())
        if exit_.code in (0, None):
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(printed.getvalue())
            except OSError:  # no writable home: the help was printed, only not kept
                pass
        raise
