"""The rollout tables in the registry's PostgreSQL database and schema.

One connection per store, opened on first use, used by one thread at a time and reopened
after the server drops it. Writes take one transaction-scoped advisory lock (the event chain
is one sequence), so concurrent controllers queue. Times are stored as ISO 8601 text, the
same bytes the event hashes were computed over, so a chain verifies on either backend.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from taxiway.errors import RolloutError
from taxiway.rollout.database import Execute
from taxiway.spec.secrets import redact

__all__ = ["PostgresDatabase"]

Connection = psycopg.Connection[tuple[Any, ...]]

_SCHEMA: list[LiteralString] = [
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.rollouts (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        salt TEXT NOT NULL,
        control TEXT NOT NULL,
        candidate INTEGER NOT NULL,
        unit TEXT,
        steps TEXT NOT NULL,
        step_index INTEGER NOT NULL,
        share DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('running', 'paused', 'rolled_back', 'complete', 'aborted')),
        started_at TEXT NOT NULL,
        step_started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        verdict TEXT,
        plan TEXT NOT NULL,
        revision INTEGER NOT NULL
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_active
        ON {schema}.rollouts (name) WHERE state IN ('running', 'paused')""",
    "CREATE INDEX IF NOT EXISTS rollouts_of_name ON {schema}.rollouts (name, id)",
    """CREATE TABLE IF NOT EXISTS {schema}.rollout_events (
        seq BIGINT PRIMARY KEY,
        rollout_id BIGINT NOT NULL REFERENCES {schema}.rollouts (id),
        name TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        step_index INTEGER NOT NULL,
        share DOUBLE PRECISION NOT NULL,
        by TEXT NOT NULL,
        evidence TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS rollout_events_of_rollout
        ON {schema}.rollout_events (rollout_id, seq)""",
]
_OBJECTS = (
    "rollouts",
    "rollouts_one_active",
    "rollouts_of_name",
    "rollout_events",
    "rollout_events_of_rollout",
)
_EXISTING = "SELECT " + " + ".join(
    f"(to_regclass(quote_ident(%s) || '.{name}') IS NOT NULL)::int" for name in _OBJECTS
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


class PostgresDatabase:
    """The rollout tables in ``schema`` of the PostgreSQL database at ``url``."""

    def __init__(self, url: str, *, schema: str = "taxiway", connect_timeout_s: float = 10.0):
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise RolloutError(
                "registry.url does not hold a PostgreSQL connection URL",
                fix="set registry.url to a URL such as postgresql://user@host:5432/dbname",
            ) from None
        self._url = url
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.where = f"postgresql {host}:{params.get('port') or 5432} (schema {schema})"
        self._lock_key = f"taxiway.rollout:{schema}"
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._closed = False

    def read(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read statement."""
        with self._session("read") as conn:
            return conn.execute(self._sql(statement), tuple(params)).fetchall()

    @contextmanager
    def write(self, action: str) -> Iterator[Execute]:
        """A transaction holding the rollout advisory lock."""
        with self._session(action) as conn, conn.transaction():
            conn.execute(_LOCK, (self._lock_key,))

            def execute(statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                cursor = conn.execute(self._sql(statement), tuple(params))
                return cursor.fetchall() if cursor.description is not None else []

            yield execute

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _sql(self, statement: str) -> sql.Composed:
        text = (
            statement.replace("?", "%s")
            .replace("{rollouts}", "{schema}.rollouts")
            .replace("{rollout_events}", "{schema}.rollout_events")
        )
        return sql.SQL(text).format(schema=sql.Identifier(self.schema))

    @contextmanager
    def _session(self, action: str) -> Iterator[Connection]:
        with self._lock:
            conn = self._connect()
            try:
                yield conn
            except psycopg.Error as error:
                if conn.broken or conn.closed:
                    self._conn = None
                    conn.close()
                raise self._failed(action, error) from None

    def _connect(self) -> Connection:
        if self._closed:
            raise RolloutError(
                f"the rollout store at {self.where} is closed",
                fix="open it again with open_rollout_store()",
            )
        if self._conn is not None and not self._conn.closed:
            return self._conn
        timeout = max(2, math.ceil(self.connect_timeout_s))
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=timeout,
                application_name="taxiway-rollout",
            )
        except psycopg.OperationalError as error:
            raise RolloutError(
                f"cannot connect to the rollout store at {self.where}: {_first_line(error)}",
                fix="check that the registry's PostgreSQL server is up and registry.url",
            ) from None
        try:
            row = conn.execute(_EXISTING, [self.schema] * len(_OBJECTS)).fetchone()
            if row is None or row[0] != len(_OBJECTS):
                with conn.transaction():
                    conn.execute(_LOCK, (self._lock_key,))
                    for statement in _SCHEMA:
                        conn.execute(sql.SQL(statement).format(schema=sql.Identifier(self.schema)))
        except psycopg.Error as error:
            conn.close()
            raise self._failed("create the tables of", error) from None
        self._conn = conn
        return conn

    def _failed(self, action: str, error: psycopg.Error) -> RolloutError:
        reason = _first_line(error)
        if isinstance(error, psycopg.errors.UniqueViolation) and "rollouts_one_active" in reason:
            fix = "one rollout per model may be active: finish the running one first"
        elif isinstance(error, psycopg.errors.InsufficientPrivilege):
            fix = f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {self.schema} TO <role>;"
        else:
            fix = "check that the server is up and no other program changed the rollout tables"
        return RolloutError(f"cannot {action} the rollout store at {self.where}: {reason}", fix=fix)


def _first_line(error: BaseException) -> str:
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    text = primary if isinstance(primary, str) and primary else str(error)
    text = redact(text).strip()
    return text.splitlines()[0] if text else type(error).__name__
