"""`owsd COMMAND ...`: dispatches to the command's module and turns user errors into one line and exit 2."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

from owsd.errors import user_error

# name → (module in owsd.commands, one line for `owsd --help`); modules load only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "key": ("key", "keys: `new PATH`, `rotate --config FILE` (retire the key for a new one), `list` (the ledger)"),
    "keygen": ("key", "same as `owsd key new PATH`: write a new 256-bit key file (mode 0600)"),
    "fit": ("train", "fill the cache, train and test the IIN and each `compare` input, print the table"),
    "validate": ("train", "evaluate a trained IIN checkpoint on the validation split"),
    "test": ("train", "evaluate a trained IIN checkpoint on the test split"),
    "analyze": ("analyze", "what the cloud sees and answers: image grid, label overlap, entropy, PCA (paper §5.1–5.2)"),
    "attack": ("attack", "attack suite over the adversary's resources, defences and the key budget"),
    "sweep": ("sweep", "run a wandb sweep YAML offline with W&B's sweep engine; trials table in --out"),
    "predict": ("predict", "classify new images with a trained IIN: scramble, ask the cloud, write top-k CSV/JSON"),
    "run": ("run", "repeat a config's experiment over seeds (and sizes, ensembles, recipes) from one cache"),
    "report": ("report", "the paper's tables and Figure 2 from `owsd run` folders, beside the paper's numbers"),
    "serve-cloud": ("serve_cloud", "serve a timm classifier over the Open Inference Protocol (v2 REST), for RemoteCloud"),
}


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


def configure_logging() -> None:
    """One line per stage from owsd; Lightning only for warnings (its per-Trainer banners and tips would
    repeat for every IIN a command trains). Idempotent, as tests call `main` many times in one process."""
    owsd = logging.getLogger("owsd")
    if not owsd.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        owsd.addHandler(handler)
    owsd.setLevel(logging.INFO)
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; ours must come after)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # torch vs Lightning, harmless
    warnings.filterwarnings("ignore", message=r".*`tensorboardX` has been removed")  # CSVLogger is the default here


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    if args[0] not in COMMANDS:
        print(f"owsd: error: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    configure_logging()
    command = importlib.import_module(f"owsd.commands.{COMMANDS[args[0]][0]}")
    try:
        command.main(args)
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        print(f"owsd: error: {cause}", file=sys.stderr)
        sys.exit(2)
