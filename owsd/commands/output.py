"""A command's output folder, written so that an interrupt or a failure loses nothing finished.

Work goes to `DIR.partial`, which a failure or an interrupt keeps and the same command run again resumes;
`DIR` appears, complete, in one rename when the command succeeds. A marker in the partial folder records the
settings it was started with, so a resume never mixes the results of two different configs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from owsd.errors import ConfigError
from owsd.files import check_writable
from owsd.interrupts import HANDLED
from owsd.provenance import provenance

if TYPE_CHECKING:  # report and sweep write folders without loading torch
    from owsd.pipeline import Pipeline

log = logging.getLogger("owsd")

STARTED_WITH = ".owsd-started-with"  # the settings a partial folder was started with
STARTED_UNDER = ".owsd-started-under.json"  # the pipeline contract (key, cloud, models) it was started under
PROVENANCE = "provenance.json"  # the commit, command, machine and wall time of the results (`owsd.provenance`)


def check_output_folder(out: Path) -> None:
    """Refuse a folder that already holds something (another run's results are never overwritten), or one that
    cannot be made."""
    check_writable(out, "--out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} already holds files (another run's results?); give a new or empty folder")


class OutputFolder:
    """`with OutputFolder(out, settings) as folder:` write into `folder` (`out.partial`).

    Args:
        out: where the results end up.
        settings: what the results depend on (the config as YAML, the command line): a partial folder
            started with other settings is refused, not resumed.
        replace: swap an existing `out` for the new results (the old folder stays until they are complete).
        progress: says what the partial folder holds (e.g. "3 of 5 repetitions"), for the interrupt's line.
        pipeline: the pipeline the results come from: a partial folder started under another contract (the
            key file now holds another key, the cloud serves another model) is refused, naming the difference.
    """

    def __init__(
        self,
        out: Path,
        settings: str,
        replace: bool = False,
        progress: Callable[[], str] | None = None,
        pipeline: Pipeline | None = None,
    ) -> None:
        self.out, self.settings, self.replace, self.progress = Path(out), settings, replace, progress
        self.pipeline = pipeline
        self.partial = self.out.with_name(f"{self.out.name}.partial")
        self._replaced = self.out.with_name(f".{self.out.name}.replaced")
        self.resumed = False
        self.started = time.time()

    def __enter__(self) -> Path:
        self._finish_an_interrupted_rename()
        if not self.replace:
            check_output_folder(self.out)
        marker = self.partial / STARTED_WITH
        if self.partial.exists():
            if not marker.exists() or marker.read_text() != self.settings:
                raise ConfigError(
                    f"{self.partial} holds an interrupted run with other settings; rerun it as it was started, "
                    f"or remove {self.partial}"
                )
            self._check_contract()
            self.resumed = True
            log.info("resuming from %s", self.partial)
        else:
            self.partial.mkdir(parents=True)
            marker.write_text(self.settings)
            if self.pipeline is not None:
                (self.partial / STARTED_UNDER).write_text(json.dumps(self.pipeline.contract))
        return self.partial

    def _check_contract(self) -> None:
        recorded = self.partial / STARTED_UNDER
        if self.pipeline is None or not recorded.exists():
            return
        difference = self.pipeline.contract_difference(json.loads(recorded.read_text()), str(self.partial))
        if difference is not None:
            raise ConfigError(
                f"{self.partial} holds an interrupted run under another {difference}; its results would not mix "
                f"with this run's: restore the setting, or remove {self.partial}"
            )

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if error is None:
            self._finish()
            return
        held = [p for p in self.partial.iterdir() if p.name != STARTED_WITH] if self.partial.exists() else []
        if not held:
            shutil.rmtree(self.partial, ignore_errors=True)
            error.add_note("nothing was finished, nothing kept")
            return
        what = f" ({self.progress()})" if self.progress is not None else ""
        error.add_note(f"kept {self.partial}{what}; run the same command again to resume")

    def _finish(self) -> None:
        """`partial` becomes `out`. Removing the marker says the results are complete; with `replace`, the old
        `out` is moved aside before and removed after the rename, so a kill at any point leaves the old or the
        new results where `_finish_an_interrupted_rename` completes the step. SIGINT and SIGTERM wait."""
        (self.partial / PROVENANCE).write_text(json.dumps(provenance(self.started, self.resumed), indent=2) + "\n")
        old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            (self.partial / STARTED_UNDER).unlink(missing_ok=True)
            (self.partial / STARTED_WITH).unlink()
            self.partial.chmod(0o755)
            if self.replace and self.out.exists():
                os.replace(self.out, self._replaced)
            os.replace(self.partial, self.out)  # replaces an empty folder in one step
            shutil.rmtree(self._replaced, ignore_errors=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _finish_an_interrupted_rename(self) -> None:
        """A partial folder without its marker is complete: the process died between marker and rename."""
        if self.partial.exists() and not (self.partial / STARTED_WITH).exists():
            if self.out.exists():  # only a replace finishes beside an existing `out`
                os.replace(self.out, self._replaced)
            os.replace(self.partial, self.out)
            log.info("completed %s: its results were finished when the command was stopped", self.out)
        shutil.rmtree(self._replaced, ignore_errors=True)
