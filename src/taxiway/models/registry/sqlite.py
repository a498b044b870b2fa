"""The embedded registry: metadata in one SQLite file, artifacts in a folder; the default.

Two tables: ``model_versions`` (one row per version, JSON fields as TEXT) and
``model_stage_events`` (one row per stage change). A partial unique index allows at most one
``production`` row per name, so even a hand-written ``UPDATE`` cannot make a second.

Writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken before the newest
version number is read, so two processes registering at once get different numbers. The
file is in WAL mode (readers never wait for a writer) with ``synchronous=FULL`` (a committed
version survives a power loss). Each thread gets its own connection, so a serving process can
read from many threads.
"""

from __future__ import annotations

import builtins
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from taxiway.errors import RegistryError
from taxiway.models.registry.base import (
    COLUMNS,
    EVENT_COLUMNS,
    STAGES,
    ModelVersion,
    NewVersion,
    Stage,
    StageEvent,
    check_name,
    encode_json,
    event_from_row,
    no_such_model,
    place_artifacts,
    plan_stage_change,
    stage_artifacts,
    version_from_row,
)

__all__ = ["SqliteModelRegistry"]

_STAGES_SQL = ", ".join(f"'{stage}'" for stage in STAGES)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version > 0),
    stage TEXT NOT NULL CHECK (stage IN ({_STAGES_SQL})),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    task TEXT NOT NULL,
    metrics TEXT NOT NULL CHECK (json_valid(metrics)),
    features TEXT NOT NULL CHECK (json_valid(features)),
    definitions_hash TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    git_commit TEXT,
    training TEXT NOT NULL CHECK (json_valid(training)),
    lineage TEXT NOT NULL CHECK (json_valid(lineage)),
    profile TEXT NOT NULL CHECK (json_valid(profile)),
    serving TEXT NOT NULL CHECK (json_valid(serving)),
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS model_versions_one_production
    ON model_versions (name) WHERE stage = 'production';
CREATE TABLE IF NOT EXISTS model_stage_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    from_stage TEXT CHECK (from_stage IN ({_STAGES_SQL})),
    to_stage TEXT NOT NULL CHECK (to_stage IN ({_STAGES_SQL})),
    at TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    note TEXT,
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);
CREATE INDEX IF NOT EXISTS model_stage_events_of_name ON model_stage_events (name, id);
"""
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM model_versions"  # nosec B608
_INSERT = (
    f"INSERT INTO model_versions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # nosec B608
)
_EVENT = (
    f"INSERT INTO model_stage_events ({', '.join(EVENT_COLUMNS)}) "  # nosec B608
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
_BUSY_TIMEOUT_MS = 30_000


class SqliteModelRegistry:
    """Model versions in the SQLite file ``path``; their files under the folder ``artifacts``.

    Both are created on first use.
    """

    def __init__(self, path: Path, artifacts: Path) -> None:
        self.path = Path(path)
        self.artifact_root = Path(artifacts).resolve()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: builtins.list[sqlite3.Connection] = []
        self._closed = False
        self._ready = False

    def __repr__(self) -> str:
        return f"SqliteModelRegistry({str(self.path)!r})"

    # ------------------------------------------------------------------ the protocol

    def register(self, new: NewVersion, artifacts: Path) -> ModelVersion:
        """Copy ``artifacts`` in and record ``new`` as the next version of its name."""
        check_name(new.name)
        encoded = encode_json(new)
        incoming = stage_artifacts(artifacts, self.artifact_root, new.name)
        placed: Path | None = None
        recorded = False
        try:
            with self._write("register a version in") as connection:
                row = connection.execute(
                    "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE name = ?",
                    (new.name,),
                ).fetchone()
                version = int(row[0])
                placed = place_artifacts(incoming, self.artifact_root, new.name, version)
                now = _now()
                values = {**new.__dict__, **encoded}
                values.update(version=version, stage="candidate", created_at=now)
                connection.execute(_INSERT, [values[column] for column in COLUMNS])
                connection.execute(
                    _EVENT, (new.name, version, None, "candidate", now, new.created_by, None)
                )
                recorded = True
        except BaseException:
            if placed is not None and not recorded:  # rolled back: no row points at the files
                shutil.rmtree(placed, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        return self.get(new.name, version)

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """Version ``version`` of ``name``, or its newest; RegistryError naming known versions."""
        with self._read("read") as connection:
            if version is None:
                sql = f"{_SELECT} WHERE name = ? ORDER BY version DESC LIMIT 1"
                row = connection.execute(sql, (name,)).fetchone()
            else:
                sql = f"{_SELECT} WHERE name = ? AND version = ?"
                row = connection.execute(sql, (name, version)).fetchone()
            if row is None:
                raise no_such_model(name, version, self._versions(connection, name))
        return version_from_row(row, self.artifact_root)

    def list(self, name: str) -> builtins.list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        with self._read("read") as connection:
            rows = connection.execute(f"{_SELECT} WHERE name = ? ORDER BY version", (name,))
            return [version_from_row(row, self.artifact_root) for row in rows.fetchall()]

    def names(self) -> builtins.list[str]:
        """Every model name, sorted."""
        with self._read("read") as connection:
            rows = connection.execute("SELECT DISTINCT name FROM model_versions").fetchall()
        return sorted(str(row[0]) for row in rows)

    def production(self, name: str) -> ModelVersion | None:
        """The production version of ``name``, or None."""
        with self._read("read") as connection:
            sql = f"{_SELECT} WHERE name = ? AND stage = 'production'"
            row = connection.execute(sql, (name,)).fetchone()
        return None if row is None else version_from_row(row, self.artifact_root)

    def set_stage(
        self, name: str, version: int, stage: Stage, *, by: str, note: str | None = None
    ) -> ModelVersion:
        """Move ``version`` to ``stage``, archiving the previous production version atomically."""
        with self._write("change a stage in") as connection:
            row = connection.execute(
                "SELECT stage FROM model_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if row is None:
                raise no_such_model(name, version, self._versions(connection, name))
            current = connection.execute(
                "SELECT version FROM model_versions WHERE name = ? AND stage = 'production'",
                (name,),
            ).fetchone()
            changes = plan_stage_change(
                name, version, row[0], stage, None if current is None else current[0], note
            )
            now = _now()
            for change in changes:
                connection.execute(
                    "UPDATE model_versions SET stage = ? WHERE name = ? AND version = ?",
                    (change.to_stage, name, change.version),
                )
                connection.execute(
                    _EVENT,
                    (
                        name,
                        change.version,
                        change.from_stage,
                        change.to_stage,
                        now,
                        by,
                        change.note,
                    ),
                )
        return self.get(name, version)

    def history(self, name: str) -> builtins.list[StageEvent]:
        """Every stage change of ``name``'s versions, oldest first."""
        with self._read("read") as connection:
            rows = connection.execute(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM model_stage_events "  # nosec B608
                "WHERE name = ? ORDER BY id",
                (name,),
            ).fetchall()
        return [event_from_row(row) for row in rows]

    def close(self) -> None:
        """Close every connection this registry opened, in any thread."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _versions(connection: sqlite3.Connection, name: str) -> builtins.list[int]:
        rows = connection.execute(
            "SELECT version FROM model_versions WHERE name = ? ORDER BY version", (name,)
        ).fetchall()
        return [int(row[0]) for row in rows]

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        try:
            yield self._connection()
        except sqlite3.Error as error:
            raise self._error(action, error) from None

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:  # some errors have rolled back already
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error(action, error) from None

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema made) on first use."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and not self._closed:
            return connection
        with self._lock:
            if self._closed:
                raise RegistryError(
                    f"the model registry {self.path} is closed",
                    fix="open the registry again with open_registry()",
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
            raise RegistryError(
                f"cannot create the folder of the model registry {self.path} ({error.strerror})",
                fix="point registry.path (or the state directory) at a writable folder",
            ) from None
        # autocommit (isolation_level=None): transactions are begun explicitly, and
        # check_same_thread=False only so close() may close it from another thread.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(_SCHEMA)
                self._ready = True
            connection.execute("PRAGMA synchronous = FULL")
        except BaseException:
            connection.close()
            raise
        return connection

    def _error(self, action: str, error: sqlite3.Error) -> RegistryError:
        reason = str(error)
        if isinstance(error, sqlite3.IntegrityError) and "production" in reason:
            fix = "keep one production version per model: use set_stage, which archives the other"
        elif isinstance(error, sqlite3.OperationalError) and "locked" in reason:
            fix = "another process holds the registry's write lock for too long; let it finish"
        elif "readonly" in reason or "unable to open" in reason:
            fix = "point registry.path (or the state directory) at a writable file"
        elif isinstance(error, sqlite3.DatabaseError) and "not a database" in reason:
            fix = "this file is not a model registry; choose another registry.path"
        else:
            fix = "check the file's permissions and free disk space"
        return RegistryError(f"cannot {action} the model registry {self.path}: {reason}", fix=fix)


def _now() -> str:
    return datetime.now(UTC).isoformat()
