"""The rollout tables in the registry's SQLite file: one connection per thread, WAL mode.

Writes run in ``BEGIN IMMEDIATE`` transactions (the file's write lock is held from the first
statement, so two controllers never append the same event number). Reads never wait for a
writer (WAL). The tables are created on first use, only when they are missing, so a reader
(a serving worker) never takes the write lock to open the store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taxiway.errors import RolloutError
from taxiway.rollout.database import Execute

__all__ = ["SqliteDatabase"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    salt TEXT NOT NULL,
    control TEXT NOT NULL,
    candidate INTEGER NOT NULL,
    unit TEXT,
    steps TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    share REAL NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('running', 'paused', 'rolled_back', 'complete', 'aborted')),
    started_at TEXT NOT NULL,
    step_started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    verdict TEXT,
    plan TEXT NOT NULL,
    revision INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_active
    ON rollouts (name) WHERE state IN ('running', 'paused');
CREATE INDEX IF NOT EXISTS rollouts_of_name ON rollouts (name, id);
CREATE TABLE IF NOT EXISTS rollout_events (
    seq INTEGER PRIMARY KEY,
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id),
    name TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    share REAL NOT NULL,
    by TEXT NOT NULL,
    evidence TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rollout_events_of_rollout ON rollout_events (rollout_id, seq);
"""
_OBJECTS = (
    "rollouts",
    "rollouts_one_active",
    "rollouts_of_name",
    "rollout_events",
    "rollout_events_of_rollout",
)
_BUSY_TIMEOUT_MS = 30_000


class SqliteDatabase:
    """The rollout tables in the SQLite file ``path`` (the registry's file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._ready = False

    def read(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read statement on this thread's connection."""
        try:
            return self._connection().execute(_sql(statement), tuple(params)).fetchall()
        except sqlite3.Error as error:
            raise self._error("read", error) from None

    @contextmanager
    def write(self, action: str) -> Iterator[Execute]:
        """A transaction holding the file's write lock from its first statement."""
        connection = self._connection()

        def execute(statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            return connection.execute(_sql(statement), tuple(params)).fetchall()

        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield execute
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error(action, error) from None

    def close(self) -> None:
        """Close every connection opened, in any thread."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and not self._closed:
            return connection
        with self._lock:
            if self._closed:
                raise RolloutError(
                    f"the rollout store {self.path} is closed",
                    fix="open it again with open_rollout_store()",
                )
            try:
                connection = self._open()
            except sqlite3.Error as error:
                raise self._error("open", error) from None
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RolloutError(
                f"cannot create the folder of the rollout store {self.path} ({error.strerror})",
                fix="point registry.path (or the state directory) at a writable folder",
            ) from None
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if not self._ready:
                marks = ", ".join("?" * len(_OBJECTS))
                found = connection.execute(
                    f"SELECT count(*) FROM sqlite_master WHERE name IN ({marks})",  # nosec B608
                    _OBJECTS,
                ).fetchone()[0]
                if found != len(_OBJECTS):
                    connection.execute("PRAGMA journal_mode = WAL")
                    connection.executescript(_SCHEMA)
                self._ready = True
            connection.execute("PRAGMA synchronous = FULL")
        except BaseException:
            connection.close()
            raise
        return connection

    def _error(self, action: str, error: sqlite3.Error) -> RolloutError:
        reason = str(error)
        if isinstance(error, sqlite3.IntegrityError) and "rollouts.name" in reason:
            fix = "one rollout per model may be active: finish the running one first"
        elif isinstance(error, sqlite3.OperationalError) and "locked" in reason:
            fix = "another process holds the registry's write lock for too long; let it finish"
        elif isinstance(error, sqlite3.DatabaseError) and "not a database" in reason:
            fix = "this file is not a model registry; choose another registry.path"
        else:
            fix = "check the file's permissions and free disk space"
        return RolloutError(f"cannot {action} the rollout store {self.path}: {reason}", fix=fix)


def _sql(statement: str) -> str:
    return statement.replace("{rollouts}", "rollouts").replace("{rollout_events}", "rollout_events")
