"""The key ledger: a SQLite file recording, per key fingerprint, every scrambled image a cloud may have seen.

The attacks measure leakage as a function of how many images the cloud saw under one key, so that count
must be known and must never be too low. A batch is recorded, and the record committed to disk, *before*
it is sent: a crash can over-count a batch whose send is uncertain, never under-count. An image is named
by the SHA-256 of its exact uint8 bytes, so sending the same bytes again (a retry after a lost answer)
counts as a resend, not as a new exposure. Writers lock the file (`BEGIN IMMEDIATE`, WAL journal, busy
timeout), so several processes (DDP precompute) can record at once and the budget check cannot race.

Only fingerprints are stored, never key material.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from owsd.errors import ConfigError, KeyBudgetError
from owsd.files import OWNER_ONLY_FILE, owner_only_folder

if TYPE_CHECKING:  # only the tensor's own methods are called: `owsd key list` need not load torch
    import torch

DEFAULT_LEDGER = Path(".owsd/ledger.sqlite")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    fingerprint TEXT PRIMARY KEY,
    created REAL NOT NULL,
    key_file TEXT,
    budget INTEGER,
    retired INTEGER NOT NULL DEFAULT 0,
    retired_at REAL
);
CREATE TABLE IF NOT EXISTS exposures (
    fingerprint TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT,
    first_sent REAL NOT NULL,
    last_sent REAL NOT NULL,
    sends INTEGER NOT NULL DEFAULT 1,
    command TEXT NOT NULL,
    run TEXT NOT NULL,
    PRIMARY KEY (fingerprint, digest)
);
"""


@dataclass(frozen=True)
class KeyRecord:
    """One key's line in `owsd key list`."""

    fingerprint: str
    created: float
    key_file: str | None
    budget: int | None
    retired: bool
    exposed: int  # distinct scrambled images the cloud may have seen
    resends: int  # further sends of bytes it had already seen


def image_digests(pixels: torch.Tensor) -> list[str]:
    """SHA-256 of each image's exact uint8 bytes (N×3×H×W), as the ledger names it."""
    return [hashlib.sha256(image.contiguous().numpy().tobytes()).hexdigest() for image in pixels.cpu()]


def configured_budget(key_budget: int | None, key_budget_file: Path | None) -> int | None:
    """The budget the settings give: a number, the T1 budget of a `key_budget.json`, or none."""
    return key_budget if key_budget_file is None else read_budget_file(key_budget_file)


def read_budget_file(path: Path) -> int:
    """The T1 budget of a `key_budget.json` written by `owsd attack`.

    T1's resource is "submissions seen", the quantity this ledger counts; T2 (labels) and T3 (known pairs)
    count what the adversary learns elsewhere, which no ledger of submissions can see.
    """
    try:
        budget = json.loads(Path(path).read_text())["configured"]["T1"]["budget"]
    except FileNotFoundError:
        raise ConfigError(f"data.scrambler.key_budget_file {path} does not exist") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"data.scrambler.key_budget_file {path} holds no configured.T1.budget") from None
    if not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"data.scrambler.key_budget_file {path}: configured.T1.budget is {budget!r}")
    return budget


class KeyLedger:
    """The ledger file at `path`; `command` names what sends through this instance (precompute, predict).

    Holds only a path, no connection, so it can be pickled to another process (DDP spawn); each call
    connects, commits and closes.
    """

    def __init__(self, path: Path, command: str) -> None:
        self.path, self.command = Path(path), command
        self.run = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # tells one invocation's rows from another's

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the file's write lock from its start; committed durably or rolled back."""
        self._create_owner_only()
        with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # set once, by whoever creates the file
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the batch is sent
            db.executescript(_SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _create_owner_only(self) -> None:
        """The ledger names every private image sent: its owner's only, whatever the umask. SQLite gives the
        WAL and shared-memory files beside it the database file's mode."""
        if not self.path.parent.exists():
            owner_only_folder(self.path.parent)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, OWNER_ONLY_FILE))
        os.chmod(self.path, OWNER_ONLY_FILE)

    def register(self, fingerprint: str, key_file: Path | None, created: float, budget: int | None) -> None:
        """Name a key and its current budget (a later run's setting replaces an earlier one's)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO keys (fingerprint, created, key_file, budget) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (fingerprint) DO UPDATE SET budget = excluded.budget, "
                "key_file = CASE WHEN retired THEN key_file ELSE excluded.key_file END",
                (fingerprint, created, None if key_file is None else str(key_file), budget),
            )

    def retire(self, fingerprint: str, key_file: Path, created: float) -> None:
        """Mark a key retired (kept at `key_file` for audits); no image is sent under it again."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO keys (fingerprint, created, key_file, retired, retired_at) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (fingerprint) DO UPDATE SET key_file = excluded.key_file, retired = 1, "
                "retired_at = excluded.retired_at",
                (fingerprint, created, str(key_file), time.time()),
            )

    def check(self, fingerprint: str, upcoming: int) -> None:
        """Refuse, before anything is computed, a run that may send `upcoming` new images beyond the budget."""
        with self._transaction() as db:
            self._refuse(db, fingerprint, upcoming, "may send up to")

    def record(self, fingerprint: str, digests: Sequence[str], image_ids: Sequence[str] | None = None) -> None:
        """Record a batch about to be sent, or raise `KeyBudgetError` and record nothing."""
        ids = list(image_ids) if image_ids is not None else [None] * len(digests)
        now = time.time()
        with self._transaction() as db:
            unique = set(digests)
            query = f"SELECT digest FROM exposures WHERE fingerprint = ? AND digest IN ({','.join('?' * len(unique))})"
            seen = {row[0] for row in db.execute(query, (fingerprint, *unique))}
            db.execute("INSERT OR IGNORE INTO keys (fingerprint, created) VALUES (?, ?)", (fingerprint, now))
            self._refuse(db, fingerprint, len(unique - seen), "would send")
            db.executemany(
                "INSERT INTO exposures (fingerprint, digest, image_id, first_sent, last_sent, command, run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint, digest) "
                "DO UPDATE SET sends = sends + 1, last_sent = excluded.last_sent",
                [
                    (fingerprint, digest, image_id, now, now, self.command, self.run)
                    for digest, image_id in zip(digests, ids)
                ],
            )

    @staticmethod
    def _refuse(db: sqlite3.Connection, fingerprint: str, new: int, verb: str) -> None:
        key = db.execute("SELECT budget, retired FROM keys WHERE fingerprint = ?", (fingerprint,)).fetchone()
        budget, retired = key if key else (None, 0)
        if retired:
            raise KeyBudgetError(f"key {fingerprint} is retired; nothing more is sent under it")
        if budget is None or new == 0:
            return
        (exposed,) = db.execute("SELECT COUNT(*) FROM exposures WHERE fingerprint = ?", (fingerprint,)).fetchone()
        if exposed + new > budget:
            raise KeyBudgetError(
                f"key {fingerprint} has exposed {exposed} images and this run {verb} {new} more, beyond its budget "
                f"of {budget}; nothing was sent (make a new key with `owsd key rotate --config ...`)"
            )

    def keys(self) -> list[KeyRecord]:
        """Every key the ledger knows, oldest first, with its exposure and resend counts."""
        if not self.path.exists():
            raise ConfigError(f"no key ledger at {self.path} (it is created when images are first sent)")
        with self._transaction() as db:
            rows = db.execute(
                "SELECT k.fingerprint, k.created, k.key_file, k.budget, k.retired, COUNT(e.digest), "
                "COALESCE(SUM(e.sends - 1), 0) FROM keys k LEFT JOIN exposures e USING (fingerprint) "
                "GROUP BY k.fingerprint ORDER BY k.created, k.fingerprint"
            ).fetchall()
        return [
            KeyRecord(fp, created, path, budget, bool(retired), n, r)
            for fp, created, path, budget, retired, n, r in rows
        ]
