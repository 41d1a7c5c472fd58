"""Answers a command gives before it imports Lightning (5 s of a 6-10 s start on an idle 2-core machine).

A `--config` file that is missing, unreadable or not YAML is refused at once. `--help` of a command whose
parser is built from Lightning's signatures is printed from a text of that parser's help: the one shipped in
`owsd/commands/help/` when this installation is the one it was written for (same owsd sources, Python and
versions of the libraries that shape the options; `python -m owsd.commands.write_help` writes it and
`test_quick_answers` checks it is current), else the one this
installation printed last (kept under $XDG_CACHE_HOME/owsd/help), else the parser prints it and it is kept.
The same text answers an unknown option: a setting no option of it can take is refused with "did you mean".
"""

import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from importlib import metadata
from pathlib import Path

import yaml

from owsd.commands.parse_errors import config_files, unknown_setting, yaml_syntax
from owsd.errors import ConfigError

# whose signatures, docstrings and formatting become a command's options and help
_SHAPING = ("lightning", "jsonargparse", "docstring-parser", "typeshed-client", "pydantic", "torch", "timm",
            "torchmetrics")  # fmt: skip
_OWSD = Path(__file__).resolve().parents[1]
SHIPPED = Path(__file__).resolve().parent / "help"
# the commands whose parser needs Lightning: one parser each, its help shipped (`owsd.commands.write_help`)
SLOW_TO_PARSE = ("fit", "validate", "test", "analyze", "attack", "predict", "run", "report", "train-cloud",
                 "serve-cloud")  # fmt: skip


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


def installation() -> dict:
    """What a command's options and help depend on: Python, the shaping libraries, owsd's sources (their
    content, so an edited working copy is another installation)."""
    libraries = {}
    for name in _SHAPING:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    sources = hashlib.sha256()
    for source in sorted(_OWSD.rglob("*.py")):
        sources.update(f"{source.relative_to(_OWSD).as_posix()}\0".encode() + source.read_bytes())
    return {"python": "{}.{}".format(*sys.version_info), "libraries": libraries, "sources": sources.hexdigest()}


def help_cache(command: str, this: dict) -> Path:
    """Where the installation `this` keeps the help text of `command` it printed."""
    digest = hashlib.sha256(json.dumps(this, sort_keys=True).encode()).hexdigest()[:16]
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "owsd" / "help" / f"{command}-{digest}.txt"


def help_text(command: str, this: dict | None = None) -> str | None:
    """`command`'s help without building its parser: shipped for this installation, or kept; else None."""
    this = this or installation()
    stamp = SHIPPED / "installation.json"
    if command in SLOW_TO_PARSE and stamp.is_file() and json.loads(stamp.read_text()) == this:
        return (SHIPPED / f"{command}.txt").read_text()
    kept = help_cache(command, this)
    return kept.read_text() if kept.is_file() else None


def print_help(command: str, show: Callable[[], None]) -> None:
    """Print `command`'s help from `help_text`, or run `show` (which prints it and exits 0) and keep what it printed."""
    this = installation()
    text = help_text(command, this)
    if text is not None:
        sys.stdout.write(text)
        raise SystemExit(0)
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            show()
    except SystemExit as exit_:
        sys.stdout.write(printed.getvalue())
        if exit_.code in (0, None):
            kept = help_cache(command, this)
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(printed.getvalue())
            except OSError:  # no writable home: the help was printed, only not kept
                pass
        raise


def check_options(command: str, arguments: list[str]) -> None:
    """Refuse an option that no option in `command`'s help text can take, with the closest one. Without a
    help text (its first start in an installation the shipped texts are not for) the parser decides."""
    text = help_text(command) if command in SLOW_TO_PARSE else None
    if text is None:
        return
    names = option_names(text)
    for argument in arguments:
        if argument == "--":
            return
        option = option_of(argument)
        if option.startswith("--") and not takes(names, option):  # said as the parser says it (`settings`)
            line = unknown_setting(option[2:], sorted(name[2:] for name in names))
            sys.stderr.write(f"owsd {command}: error: {line}\n(`owsd {command} --help` lists every setting)\n")
            raise SystemExit(2)


def option_names(help_: str) -> set[str]:
    """Every `--name` a help text shows (its usage, options and prose: more names only pass more options)."""
    return {name.rstrip(".") for name in re.findall(r"--[A-Za-z][\w.-]*", help_)}


def option_of(argument: str) -> str:
    """The option an argument gives: `--name=value` and `--trainer.callbacks+=...` give `--name` and
    `--trainer.callbacks`."""
    return argument.split("=", 1)[0].rstrip("+")


def takes(names: set[str], option: str) -> bool:
    """Whether the parser with these option names may accept `option`. Beyond an exact name: an
    abbreviation (argparse takes a unique prefix), and anything below the nearest listed name unless that
    name is a group whose settings the help lists in full (an open class, with its `NAME.help`, takes
    `NAME.init_args.*`; a dict setting takes `NAME.key`)."""
    if any(name.startswith(option) for name in names):
        return True
    parts = option.split(".")
    for end in range(len(parts) - 1, 0, -1):
        nearest = ".".join(parts[:end])
        if nearest in names:
            is_group = any(name.startswith(nearest + ".") for name in names)
            return f"{nearest}.help" in names or not is_group
    return False
