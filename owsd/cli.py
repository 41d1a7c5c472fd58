"""`owsd COMMAND ...`: dispatches to the command's module and turns user errors into one line and exit 2."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType

from owsd.commands import COMMANDS
from owsd.commands.quick_answers import check_config_files, check_options, print_help
from owsd.commands.shipped_configs import with_shipped_configs
from owsd.errors import user_error
from owsd.interrupts import Interrupted, stop_on_signals
from owsd.ranks import launched_as_other_rank

# The commands whose precompute runs on every process a launcher starts (`owsd.distributed`); every other
# command runs on rank 0 alone, and a launcher's other ranks end at once, writing and printing nothing.
DISTRIBUTED = {"fit", "validate", "test", "run"}


def usage() -> str:
    lines = ["usage: owsd COMMAND [--config FILE] [options]", "", "commands:"]
    lines += [f"  {name:13}{summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`owsd COMMAND --help` lists a command's options."]
    return "\n".join(lines)


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted (tests and notebooks replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _) -> None:
        pass


LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def quiet_lightning() -> None:
    """Lightning's loggers to warnings only. Lightning sets them to INFO when each package is imported,
    so this must run after that: `configure_logging` arranges it; code may also call it directly."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _ignore_harmless_warnings()  # again, in front of any filter Lightning's import added


def _ignore_harmless_warnings() -> None:
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # torch vs Lightning, harmless
    warnings.filterwarnings("ignore", message=r".*`tensorboardX` has been removed")  # CSVLogger is the default here
    # `owsd.commands.train` gives LightningCLI its arguments (a shipped `--config` found by name among them)
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")


class _QuietLightningOnImport:
    """A `sys.meta_path` finder that quiets Lightning's loggers right after each of its packages is imported.

    Importing Lightning (and torch) costs seconds, and `owsd key`/`--help` need neither, so logging is not
    configured by importing it; instead the finder lets the real finders locate each package and wraps
    their loader's `exec_module`, so the levels are set the moment Lightning's own `__init__` has set its.
    """

    def find_spec(self, name: str, path: object, target: object = None) -> ModuleSpec | None:
        if name not in LIGHTNING_LOGGERS or self not in sys.meta_path:
            return None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1 :]:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is not None and hasattr(loader, "exec_module"):
            execute = loader.exec_module

            def exec_module(module: ModuleType) -> None:
                execute(module)
                quiet_lightning()

            try:
                loader.exec_module = exec_module  # this spec's own loader instance
            except AttributeError:  # a loader with slots: configure_logging's callers still get quiet_lightning
                pass
        return spec


_QUIET_LIGHTNING = _QuietLightningOnImport()


def configure_logging() -> None:
    """One line per stage from owsd; Lightning only for warnings (its per-Trainer banners and tips would
    repeat for every IIN a command trains), set when Lightning is imported, so commands that never import
    it start fast. Idempotent, as tests call `main` many times in one process."""
    owsd = logging.getLogger("owsd")
    if not owsd.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        owsd.addHandler(handler)
    owsd.setLevel(logging.INFO)
    if _QUIET_LIGHTNING not in sys.meta_path:
        sys.meta_path.insert(0, _QUIET_LIGHTNING)
    if any(name in sys.modules for name in LIGHTNING_LOGGERS):
        quiet_lightning()  # already imported (by a caller, or an earlier `main`): its import set the levels
    _ignore_harmless_warnings()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    if args[0] not in COMMANDS:
        _say(f"owsd: error: unknown command {args[0]!r}\n\n{usage()}")
        sys.exit(2)
    if args[0] not in DISTRIBUTED and launched_as_other_rank():
        return
    configure_logging()
    if argv is None:  # the process's own command line: this process is owsd's to stop
        stop_on_signals()
    run = lambda: importlib.import_module(f"owsd.commands.{COMMANDS[args[0]][0]}").main(args)  # noqa: E731
    try:
        args = [args[0], *with_shipped_configs(args[1:])]  # `--config demo.yaml` from any folder
        check_config_files(args[1:])  # before the command's imports: a missing config is refused at once
        if args[1:] in (["--help"], ["-h"]):
            print_help(args[0], run)
        check_options(args[0], args[1:])  # from the same help text: a misspelt option is refused at once
        run()
    except Interrupted as interrupt:
        _say(f"owsd: stopped by {interrupt}{_notes(interrupt)}")
        sys.exit(interrupt.exit_code)
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        _say(f"owsd: error: {cause}{_notes(error)}")
        sys.exit(2)


def _say(line: str) -> None:
    """One line to stderr in one write: `print` writes the text and its newline apart, and stderr passes each
    write straight through, so the ranks of one launch sharing a terminal or pipe interleave their lines."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _notes(error: BaseException) -> str:
    """What the output folder being written said it kept, on the same line."""
    return "".join(f"; {note}" for note in getattr(error, "__notes__", ()))
