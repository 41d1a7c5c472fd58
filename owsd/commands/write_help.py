"""`python -m owsd.commands.write_help`: write the help texts shipped in `owsd/commands/help/` again.

Run it after changing any owsd source (the texts are shipped for one digest of the sources, see
`quick_answers.installation`); `tests/commands/test_quick_answers.py` fails until they are current. Each
text comes from a fresh interpreter, as a user's `owsd COMMAND --help` would print it: jsonargparse lists
the subclasses imported so far, so a process that built another command's parser first prints more."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from owsd.commands import COMMANDS
from owsd.commands.quick_answers import SHIPPED, SLOW_TO_PARSE, installation

WIDTH = "80"  # argparse wraps at the terminal's width (COLUMNS): the same for every reader
PRINT_HELP = "import sys; from owsd.commands.{module} import main; main([sys.argv[1], '--help'])"


def live_help(command: str) -> str:
    """`command`'s help as its parser prints it in a fresh interpreter, `WIDTH` columns wide."""
    printed = subprocess.run(
        [sys.executable, "-c", PRINT_HELP.format(module=COMMANDS[command][0]), command],
        env={**os.environ, "COLUMNS": WIDTH}, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return printed.stdout


def write_shipped_help(folder: Path = SHIPPED) -> None:
    """Every slow command's help, printed by this installation's parsers, into `folder` with its stamp."""
    folder.mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        texts = dict(zip(SLOW_TO_PARSE, pool.map(live_help, SLOW_TO_PARSE)))
    for command, text in texts.items():
        (folder / f"{command}.txt").write_text(text)
    (folder / "installation.json").write_text(json.dumps(installation(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_shipped_help()
