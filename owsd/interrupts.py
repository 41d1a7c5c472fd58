"""SIGINT and SIGTERM as one exception, so every command stops the same way on Ctrl-C and on a scheduler's kill.

Job schedulers (SLURM, Kubernetes, `timeout`) send SIGTERM first and SIGKILL a while later; Python's default
ignores neither, but Lightning's handler turns SIGTERM into a flag that only its training loop reads, and its
handler for KeyboardInterrupt exits 1 silently. `Interrupted` is a `BaseException`, like KeyboardInterrupt,
so no `except Exception` swallows it; Lightning tears the Trainer down and re-raises it; the output folder
that was being written adds a note saying what it kept; the CLI prints one line and exits 128 + signal.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)
_OWNER = [0]  # the process that installed the handlers
_REASON: list[str | None] = [None]  # why this process stopped itself (`stop_because`), instead of the signal's name


class Interrupted(BaseException):
    """The process was asked to stop (SIGINT or SIGTERM)."""

    def __init__(self, signum: int, reason: str | None = None) -> None:
        super().__init__(reason or signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal killed


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _OWNER[0]:  # a forked worker (image decoding): it stops as it would have without us
        if signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)  # KeyboardInterrupt, which DataLoader workers expect
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    for handled in HANDLED:  # a second signal during the clean-up must not interrupt the clean-up itself
        signal.signal(handled, signal.SIG_IGN)
    raise Interrupted(signum, _REASON[0])


def stop_on_signals() -> None:
    """From now on SIGINT and SIGTERM raise `Interrupted` in the main thread (a no-op in other threads)."""
    if threading.current_thread() is threading.main_thread():
        _OWNER[0] = os.getpid()
        for handled in HANDLED:
            signal.signal(handled, _raise_interrupted)


def stop_because(reason: str) -> None:
    """Stop this process as Ctrl-C would, from any thread (a watchdog's), with `reason` in the CLI's line.

    SIGINT, not SIGTERM: during a run Lightning's own SIGTERM handler first tells the other ranks over a
    collective that may be gone. A real signal, so that a main thread asleep in a system call wakes at once."""
    _REASON[0] = reason
    os.kill(os.getpid(), signal.SIGINT)
