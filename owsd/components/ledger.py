"""The key ledger: per key fingerprint, every scrambled image a cloud may have seen (SQLite or PostgreSQL).

The attacks measure leakage as a function of how many images the cloud saw under one key, so that count
must be known and must never be too low. A batch is recorded, and the record committed to disk, *before*
it is sent: a crash can over-count a batch whose send is uncertain, never under-count. An image is named
by the SHA-256 of its exact uint8 bytes, so sending the same bytes again (a retry after a lost answer)
counts as a resend, not as a new exposure. Every write holds the store's lock from its start (see
`ledger_stores`), so several processes, on one machine or many, can record at once and the budget check
cannot race. A key's budget is set once, when it is first given, and changed only by `owsd key budget`.

Only fingerprints are stored, never key material.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from owsd.components.ledger_stores import Transaction, ledger_store
from owsd.errors import ConfigError, KeyBudgetError

if TYPE_CHECKING:  # only the tensor's own methods are called: `owsd key list` need not load torch
    import torch

DEFAULT_LEDGER = Path(".owsd/ledger.sqlite")


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
    assessment: str | None = None  # the command whose fresh key this is (attack, analyze), if any


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
    """The ledger at `location` (a SQLite file, or a `postgresql://` URL); `command` names what sends
    through this instance (precompute, predict).

    Holds only where the ledger is, no connection, so it can be pickled to another process (DDP spawn);
    each call connects, commits and closes.
    """

    def __init__(self, location: str | Path, command: str) -> None:
        self.store, self.command = ledger_store(location), command
        self.run = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # tells one invocation's rows from another's

    def register(
        self, fingerprint: str, key_file: Path | None, created: float, budget: int | None, assessment: str | None = None
    ) -> None:
        """Name a key and, the first time one is given, its budget. A later config may repeat the budget or
        leave it out, never change it: a budget that any run could lift would bound nothing. An `assessment`
        key is marked as the fresh key of that command, so its exposures are never read as the user's."""
        with self.store.transaction() as db:
            if assessment is not None:
                db.execute(
                    "INSERT INTO assessment_keys (fingerprint, command) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (fingerprint, assessment),
                )
            row = db.execute("SELECT budget FROM keys WHERE fingerprint = ?", (fingerprint,)).fetchone()
            if row is not None and row[0] is not None and budget is not None and budget != row[0]:
                raise ConfigError(
                    f"key {fingerprint} has a budget of {row[0]} images in the ledger {self.store.shown}, and the "
                    f"config asks for {budget}; a budget is changed only by `owsd key budget {fingerprint} {budget}`"
                )
            db.execute(
                "INSERT INTO keys (fingerprint, created, key_file, budget) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (fingerprint) DO UPDATE SET budget = COALESCE(keys.budget, excluded.budget), "
                "key_file = CASE WHEN keys.retired = 1 THEN keys.key_file ELSE excluded.key_file END",
                (fingerprint, created, None if key_file is None else str(key_file), budget),
            )

    def set_budget(self, fingerprint: str, budget: int | None) -> KeyRecord:
        """`owsd key budget`: the one way a known key's budget changes (None lifts it)."""
        with self.store.transaction() as db:
            changed = db.execute("UPDATE keys SET budget = ? WHERE fingerprint = ?", (budget, fingerprint))
            if changed.rowcount == 0:
                raise ConfigError(f"the ledger {self.store.shown} knows no key {fingerprint} (see `owsd key list`)")
        return next(key for key in self.keys() if key.fingerprint == fingerprint)

    def retire(self, fingerprint: str, key_file: Path, created: float) -> None:
        """Mark a key retired (kept at `key_file` for audits); no image is sent under it again."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO keys (fingerprint, created, key_file, retired, retired_at) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (fingerprint) DO UPDATE SET key_file = excluded.key_file, retired = 1, "
                "retired_at = excluded.retired_at",
                (fingerprint, created, str(key_file), time.time()),
            )

    def check(self, fingerprint: str, image_ids: Sequence[str], images_per_id: int = 1) -> None:
        """Refuse, before anything is computed, a run that may send more new images than the budget leaves.

        The run will send `images_per_id` scrambled images (one per encoder) for each of `image_ids`; those the
        ledger already holds under an id are counted as resends. `record` stays the exact check: an image
        whose bytes changed under the same id is new there.
        """
        with self.store.transaction() as db:
            sent = dict(self._sent_per_id(db, fingerprint, set(image_ids)))
            new = sum(max(images_per_id - sent.get(image_id, 0), 0) for image_id in set(image_ids))
            self._refuse(db, fingerprint, new, "may send up to")

    @staticmethod
    def _sent_per_id(db: Transaction, fingerprint: str, image_ids: set[str]) -> list[tuple[str, int]]:
        rows: list[tuple[str, int]] = []
        ids = sorted(image_ids)
        for start in range(0, len(ids), 500):  # SQLite binds at most 999 parameters per statement here
            chunk = ids[start : start + 500]
            named = f"WHERE fingerprint = ? AND image_id IN ({','.join('?' * len(chunk))})"
            query = (
                f"SELECT image_id, COUNT(DISTINCT digest) FROM (SELECT image_id, digest FROM sent_as {named} "
                f"UNION SELECT image_id, digest FROM exposures {named}) AS named GROUP BY image_id"
            )
            rows += [tuple(row) for row in db.execute(query, (fingerprint, *chunk, fingerprint, *chunk)).fetchall()]
        return rows

    def record(self, fingerprint: str, digests: Sequence[str], image_ids: Sequence[str] | None = None) -> None:
        """Record a batch about to be sent, or raise `KeyBudgetError` and record nothing."""
        ids = list(image_ids) if image_ids is not None else [None] * len(digests)
        now = time.time()
        with self.store.transaction() as db:
            unique = sorted(set(digests))
            query = f"SELECT digest FROM exposures WHERE fingerprint = ? AND digest IN ({','.join('?' * len(unique))})"
            seen = {row[0] for row in db.execute(query, (fingerprint, *unique)).fetchall()}
            db.execute(
                "INSERT INTO keys (fingerprint, created) VALUES (?, ?) ON CONFLICT (fingerprint) DO NOTHING",
                (fingerprint, now),
            )
            self._refuse(db, fingerprint, len(set(unique) - seen), "would send")
            db.executemany(
                "INSERT INTO exposures (fingerprint, digest, image_id, first_sent, last_sent, command, run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint, digest) "
                "DO UPDATE SET sends = exposures.sends + 1, last_sent = excluded.last_sent",
                [
                    (fingerprint, digest, image_id, now, now, self.command, self.run)
                    for digest, image_id in zip(digests, ids)
                ],
            )
            named = [(fingerprint, image_id, digest) for digest, image_id in zip(digests, ids) if image_id is not None]
            if named:  # every id the bytes were sent under: the pre-check knows a resend by any of its names
                db.executemany(
                    "INSERT INTO sent_as (fingerprint, image_id, digest) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", named
                )

    @staticmethod
    def _refuse(db: Transaction, fingerprint: str, new: int, verb: str) -> None:
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
        if not self.store.exists():
            raise ConfigError(f"no key ledger at {self.store.shown} (it is created when images are first sent)")
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT k.fingerprint, k.created, k.key_file, k.budget, k.retired, COUNT(e.digest), "
                "COALESCE(SUM(e.sends - 1), 0), a.command FROM keys k LEFT JOIN exposures e USING (fingerprint) "
                "LEFT JOIN assessment_keys a USING (fingerprint) "
                "GROUP BY k.fingerprint, a.command ORDER BY k.created, k.fingerprint"
            ).fetchall()
        return [
            KeyRecord(fp, created, path, budget, bool(retired), int(n), int(r), assessment)
            for fp, created, path, budget, retired, n, r, assessment in rows
        ]
