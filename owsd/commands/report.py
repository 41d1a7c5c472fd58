"""`owsd report RUN_DIR [RUN_DIR ...] --out DIR`: the paper's tables from the folders of `owsd run`.

Writes `DIR/README.md` (Tables 1–4 in the paper's layout with the paper's numbers and the difference, what the
cloud adds per setting, timings) and a Figure 2 PNG per use-case-5 run. `--replace` swaps an existing report
folder for the new one in one step (as when regenerating `results/`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from owsd.commands.output import OutputFolder
from owsd.commands.settings import OWSDArgumentParser
from owsd.experiments.records import read_run
from owsd.experiments.report import build_report

log = logging.getLogger("owsd")


def main(argv: list[str]) -> None:
    parser = OWSDArgumentParser(prog="owsd report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders written by `owsd run`")
    parser.add_argument("--out", type=Path, required=True, help="folder for README.md and the figures")
    parser.add_argument("--replace", action="store_true", help="replace an existing report folder")
    config = parser.parse_args(argv[1:])
    runs = [read_run(Path(folder)) for folder in config.runs]
    out = Path(config.out)
    with OutputFolder(out, " ".join(map(str, config.runs)), replace=config.replace) as folder:
        (folder / "README.md").write_text(build_report(runs, folder))
    log.info("wrote %s", out / "README.md")
