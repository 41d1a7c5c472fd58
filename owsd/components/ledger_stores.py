"""Where the key ledger lives: a SQLite file on one machine, or a PostgreSQL database that several share.

Both give the ledger the same thing: one write transaction at a time, holding a lock from its start, so a
budget check and the record it guards can never interleave with another writer's. SQLite takes the file's
write lock (`BEGIN IMMEDIATE`); SQLite's own documentation warns that its locking is unreliable on network
filesystems, so machines that share a key share a PostgreSQL ledger instead, where the lock is a
transaction-scoped advisory lock taken before anything is read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from owsd.errors import ConfigError, DataError
from owsd.files import OWNER_ONLY_FILE, owner_only_folder

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_LOCK = 0x6F777364  # "owsd": the one advisory lock every ledger writer takes
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    fingerprint TEXT PRIMARY KEY,
    created DOUBLE PRECISION NOT NULL,
    key_file TEXT,
    budget INTEGER,
    retired INTEGER NOT NULL DEFAULT 0,
    retired_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS exposures (
    fingerprint TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT,
    first_sent DOUBLE PRECISION NOT NULL,
    last_sent DOUBLE PRECISION NOT NULL,
    sends INTEGER NOT NULL DEFAULT 1,
    command TEXT NOT NULL,
    run TEXT NOT NULL,
    PRIMARY KEY (fingerprint, digest)
);
CREATE TABLE IF NOT EXISTS sent_as (
    fingerprint TEXT NOT NULL,
    image_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (fingerprint, image_id, digest)
);
CREATE TABLE IF NOT EXISTS assessment_keys (
    fingerprint TEXT PRIMARY KEY,
    command TEXT NOT NULL
);
"""


class Transaction(Protocol):
    """What the ledger's SQL runs on: `?` placeholders, whichever store."""

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...


def ledger_store(location: str | Path) -> LedgerStore:
    """The store `data.scrambler.ledger_file` names: a `postgresql://` URL, or else a file path."""
    if str(location).startswith(POSTGRES_SCHEMES):
        return PostgresStore(str(location))
    return SqliteStore(Path(location))


class SqliteStore:
    """A SQLite file (WAL journal, full sync): correct for the processes of one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = str(path)

    def exists(self) -> bool:
        return self.path.exists()

    def check(self) -> None:
        """An existing ledger file is a sound SQLite database (`PRAGMA quick_check`, read-only), checked before
        a run starts, so that a damaged one stops it before anything is sent, not after."""
        if not self.path.exists():
            return
        try:
            with closing(sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)) as db:
                problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as error:
            problems = [str(error)]
        if problems != ["ok"]:
            raise self._damaged(problems[0])

    def _damaged(self, problem: str) -> DataError:
        return DataError(
            f"key ledger {self.path} is damaged ({problem}): owsd sends nothing it cannot record. Restore it from a "
            f"backup, or move it aside to start a new, empty ledger (its keys' exposures are then forgotten)"
        )

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction, holding the file's write lock from its start; committed durably or rolled back."""
        self._create_owner_only()
        try:
            with self._transaction() as db:
                yield db
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError):  # a lock wait that timed out, a full disk: not damage
                raise
            raise self._damaged(str(error)) from None

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
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


class _Postgres:
    """A psycopg connection inside a transaction, taking the ledger's `?` placeholders."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        return self.connection.execute(sql.replace("?", "%s"), parameters)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        with self.connection.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)


class PostgresStore:
    """A PostgreSQL database (psycopg 3) that every machine sending under a key records into.

    The URL carries no password, since it appears in config dumps: libpq reads one from `PGPASSWORD` or
    `~/.pgpass`. Each transaction commits synchronously (the server's default), so a record is durable
    before its batch is sent.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.password is not None:
            raise ConfigError(
                "data.scrambler.ledger_file: a PostgreSQL URL must not hold a password (it would appear in "
                "config dumps and logs); give it in PGPASSWORD or ~/.pgpass"
            )
        self.url = url
        self.shown = url

    def exists(self) -> bool:
        with self._connect() as connection:
            row = connection.execute("SELECT to_regclass('exposures')").fetchone()
        return row[0] is not None

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                f"data.scrambler.ledger_file {self.shown} is a PostgreSQL ledger, which needs psycopg: "
                "pip install 'owsd[postgres]'"
            ) from None
        try:
            return psycopg.connect(self.url, connect_timeout=10)
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise ConfigError(f"cannot reach the key ledger {self.shown}: {reason}") from None

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._connect() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))  # before the schema: DDL races too
            connection.execute(_SCHEMA)
            yield _Postgres(connection)


LedgerStore = SqliteStore | PostgresStore
