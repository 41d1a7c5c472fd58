"""`owsd COMMAND ...`: dispatches to the command's module and turns user errors into one line and exit 2."""

from __future__ import annotations

import importlib
import logging
import sys

from owsd.errors import OWSDError

# name → (module in owsd.commands, one line for `owsd --help`); modules load only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "keygen": ("keygen", "write a new 256-bit key file (mode 0600); refuses to overwrite"),
    "fit": ("train", "fill the cache, train and test the IIN and each `compare` input, print the table"),
    "validate": ("train", "evaluate a trained IIN checkpoint on the validation split"),
    "test": ("train", "evaluate a trained IIN checkpoint on the test split"),
    "analyze": ("analyze", "what the cloud sees and answers: image grid, label overlap, entropy, PCA (paper §5.1–5.2)"),
    "attack": ("attack", "attack suite over the adversary's resources, defences and the key budget"),
}


def usage() -> str:
    lines = ["usage: owsd COMMAND [--config FILE] [options]", "", "commands:"]
    lines += [f"  {name:10}{summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`owsd COMMAND --help` lists a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(format="%(message)s")
    logging.getLogger("owsd").setLevel(logging.INFO)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    if args[0] not in COMMANDS:
        print(f"owsd: error: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    command = importlib.import_module(f"owsd.commands.{COMMANDS[args[0]][0]}")
    try:
        command.main(args)
    except OWSDError as error:
        print(f"owsd: error: {error}", file=sys.stderr)
        sys.exit(2)
