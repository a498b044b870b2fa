"""The shared registry: metadata in PostgreSQL (JSONB, so lineage is queryable), artifacts in a folder.

The tables are those of the SQLite backend, inside the configured schema, with JSON fields as
JSONB and times as ``timestamptz``. They are created on first use, under an advisory lock so
that processes starting together do not race. Registering and changing stages take a
transaction-scoped advisory lock per model name before reading the newest version or the
production one, so concurrent writers queue instead of colliding; the primary key and the
partial unique index (one ``production`` row per name) hold even against hand-written SQL.

One connection per registry, opened on first use, used by one thread at a time; it is
reopened after the server drops it. Every failure is a :class:`~taxiway.errors.RegistryError`
naming the server (never the password) and the fix.
"""

from __future__ import annotations

import builtins
import math
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from taxiway.errors import RegistryError
from taxiway.models.registry.base import (
    COLUMNS,
    EVENT_COLUMNS,
    JSON_FIELDS,
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
from taxiway.spec.secrets import redact

__all__ = ["PostgresModelRegistry"]

Connection = psycopg.Connection[tuple[Any, ...]]

_SCHEMA: list[LiteralString] = [
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.model_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version > 0),
        stage TEXT NOT NULL CHECK (stage IN ('candidate', 'production', 'archived')),
        created_at TIMESTAMPTZ NOT NULL,
        created_by TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        task TEXT NOT NULL,
        metrics JSONB NOT NULL,
        features JSONB NOT NULL,
        definitions_hash TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        git_commit TEXT,
        training JSONB NOT NULL,
        lineage JSONB NOT NULL,
        profile JSONB NOT NULL,
        serving JSONB NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS model_versions_one_production
        ON {schema}.model_versions (name) WHERE stage = 'production'""",
    """CREATE TABLE IF NOT EXISTS {schema}.model_stage_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        from_stage TEXT CHECK (from_stage IN ('candidate', 'production', 'archived')),
        to_stage TEXT NOT NULL CHECK (to_stage IN ('candidate', 'production', 'archived')),
        at TIMESTAMPTZ NOT NULL,
        changed_by TEXT NOT NULL,
        note TEXT,
        FOREIGN KEY (name, version) REFERENCES {schema}.model_versions (name, version)
    )""",
    """CREATE INDEX IF NOT EXISTS model_stage_events_of_name
        ON {schema}.model_stage_events (name, id)""",
]
_OBJECTS = (
    "model_versions",
    "model_versions_one_production",
    "model_stage_events",
    "model_stage_events_of_name",
)
_EXISTING = "SELECT " + " + ".join(
    f"(to_regclass(quote_ident(%s) || '.{name}') IS NOT NULL)::int" for name in _OBJECTS
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


class PostgresModelRegistry:
    """Model versions in the PostgreSQL database at ``url``, in ``schema``; files under ``artifacts``.

    ``origin`` says where the URL came from (e.g. ``registry.url (the environment variable
    REGISTRY_URL)``), for error messages. Nothing connects until first use.
    """

    def __init__(
        self,
        url: str,
        *,
        artifacts: Path,
        schema: str = "taxiway",
        connect_timeout_s: float = 10.0,
        origin: str = "registry.url",
    ) -> None:
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise RegistryError(
                f"{origin} does not hold a PostgreSQL connection URL",
                fix=f"set {origin} to a URL such as postgresql://user@host:5432/dbname",
            ) from None
        self._url = url
        self.artifact_root = Path(artifacts).resolve()
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self._origin = origin
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.address = f"{host}:{params.get('port') or 5432}"
        self._role = str(params.get("user") or "<role>")
        self._database = str(params.get("dbname") or params.get("user") or "<database>")
        self._lock_prefix = f"taxiway.registry:{schema}:"
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._closed = False
        self._select = self._sql(
            "SELECT "  # nosec B608
            + ", ".join(f"{c}::text" if c in JSON_FIELDS else c for c in COLUMNS)
            + " FROM {schema}.model_versions"
        )
        self._insert = self._sql(
            "INSERT INTO {schema}.model_versions ("  # nosec B608
            + ", ".join(COLUMNS)
            + ") VALUES ("
            + ", ".join("%s::jsonb" if c in JSON_FIELDS else "%s" for c in COLUMNS)
            + ")"
        )
        self._event = self._sql(
            "INSERT INTO {schema}.model_stage_events ("  # nosec B608
            + ", ".join(EVENT_COLUMNS)
            + ") VALUES ("
            + ", ".join(["%s"] * len(EVENT_COLUMNS))
            + ")"
        )

    def __repr__(self) -> str:
        return f"PostgresModelRegistry(address={self.address!r}, schema={self.schema!r})"

    # ------------------------------------------------------------------ the protocol

    def register(self, new: NewVersion, artifacts: Path) -> ModelVersion:
        """Copy ``artifacts`` in and record ``new`` as the next version of its name."""
        check_name(new.name)
        encoded = encode_json(new)
        incoming = stage_artifacts(artifacts, self.artifact_root, new.name)
        placed: Path | None = None
        recorded = False
        try:
            with self._session("register a version in") as conn, conn.transaction():
                conn.execute(_LOCK, (self._lock_prefix + new.name,))
                row = conn.execute(
                    self._sql(
                        "SELECT coalesce(max(version), 0) + 1 FROM {schema}.model_versions "
                        "WHERE name = %s"
                    ),
                    (new.name,),
                ).fetchone()
                assert row is not None  # nosec B101
                version = int(row[0])
                placed = place_artifacts(incoming, self.artifact_root, new.name, version)
                now = datetime.now(UTC)
                values = {**new.__dict__, **encoded}
                values.update(version=version, stage="candidate", created_at=now)
                conn.execute(self._insert, [values[column] for column in COLUMNS])
                conn.execute(
                    self._event, (new.name, version, None, "candidate", now, new.created_by, None)
                )
                recorded = True
        except BaseException:
            # only when surely rolled back: a failed COMMIT may still have committed
            if placed is not None and not recorded:
                shutil.rmtree(placed, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        return self.get(new.name, version)

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """Version ``version`` of ``name``, or its newest; RegistryError naming known versions."""
        with self._session("read") as conn:
            if version is None:
                query = self._select + sql.SQL(" WHERE name = %s ORDER BY version DESC LIMIT 1")
                row = conn.execute(query, (name,)).fetchone()
            else:
                query = self._select + sql.SQL(" WHERE name = %s AND version = %s")
                row = conn.execute(query, (name, version)).fetchone()
            if row is None:
                raise no_such_model(name, version, self._versions(conn, name))
        return version_from_row(row, self.artifact_root)

    def list(self, name: str) -> builtins.list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        with self._session("read") as conn:
            query = self._select + sql.SQL(" WHERE name = %s ORDER BY version")
            rows = conn.execute(query, (name,)).fetchall()
        return [version_from_row(row, self.artifact_root) for row in rows]

    def names(self) -> builtins.list[str]:
        """Every model name, sorted."""
        with self._session("read") as conn:
            query = self._sql("SELECT DISTINCT name FROM {schema}.model_versions")
            rows = conn.execute(query).fetchall()
        return sorted(str(row[0]) for row in rows)

    def production(self, name: str) -> ModelVersion | None:
        """The production version of ``name``, or None."""
        with self._session("read") as conn:
            query = self._select + sql.SQL(" WHERE name = %s AND stage = 'production'")
            row = conn.execute(query, (name,)).fetchone()
        return None if row is None else version_from_row(row, self.artifact_root)

    def set_stage(
        self, name: str, version: int, stage: Stage, *, by: str, note: str | None = None
    ) -> ModelVersion:
        """Move ``version`` to ``stage``, archiving the previous production version atomically."""
        with self._session("change a stage in") as conn, conn.transaction():
            conn.execute(_LOCK, (self._lock_prefix + name,))
            row = conn.execute(
                self._sql(
                    "SELECT stage FROM {schema}.model_versions WHERE name = %s AND version = %s"
                ),
                (name, version),
            ).fetchone()
            if row is None:
                raise no_such_model(name, version, self._versions(conn, name))
            current = conn.execute(
                self._sql(
                    "SELECT version FROM {schema}.model_versions "
                    "WHERE name = %s AND stage = 'production'"
                ),
                (name,),
            ).fetchone()
            changes = plan_stage_change(
                name, version, row[0], stage, None if current is None else current[0], note
            )
            now = datetime.now(UTC)
            update = self._sql(
                "UPDATE {schema}.model_versions SET stage = %s WHERE name = %s AND version = %s"
            )
            for change in changes:
                conn.execute(update, (change.to_stage, name, change.version))
                conn.execute(
                    self._event,
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
        with self._session("read") as conn:
            query = self._sql(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM {{schema}}.model_stage_events "  # nosec B608
                "WHERE name = %s ORDER BY id"
            )
            rows = conn.execute(query, (name,)).fetchall()
        return [event_from_row(row) for row in rows]

    def close(self) -> None:
        """Close the connection; the registry is unusable afterwards."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------ internals

    def _sql(self, template: str) -> sql.Composed:
        """``template`` with ``{schema}`` replaced by the quoted schema name."""
        return sql.SQL(template).format(schema=sql.Identifier(self.schema))

    def _versions(self, conn: Connection, name: str) -> builtins.list[int]:
        query = self._sql(
            "SELECT version FROM {schema}.model_versions WHERE name = %s ORDER BY version"
        )
        return [int(row[0]) for row in conn.execute(query, (name,)).fetchall()]

    @contextmanager
    def _session(self, action: str) -> Iterator[Connection]:
        """The connection, for this thread alone; database errors become RegistryError."""
        with self._lock:
            conn = self._connect()
            try:
                yield conn
            except psycopg.Error as error:
                if conn.broken or conn.closed:  # the server dropped it: reconnect on next use
                    self._conn = None
                    conn.close()
                    raise self._lost(action, error) from None
                raise self._failed(action, error) from None

    def _connect(self) -> Connection:
        if self._closed:
            raise RegistryError(
                f"the model registry at {self.address} is closed",
                fix="open the registry again with open_registry()",
            )
        if self._conn is not None and not self._conn.closed:
            return self._conn
        timeout = max(2, math.ceil(self.connect_timeout_s))  # libpq waits whole seconds, >= 2
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=timeout,
                application_name="taxiway-registry",
            )
        except psycopg.OperationalError as error:
            raise self._unreachable(error, timeout) from None
        try:
            self._create_tables(conn)
        except psycopg.Error as error:
            conn.close()
            raise self._failed("create the tables of", error) from None
        self._conn = conn
        return conn

    def _create_tables(self, conn: Connection) -> None:
        """Create the schema and tables unless they exist (a reader may not create anything)."""
        row = conn.execute(_EXISTING, [self.schema] * len(_OBJECTS)).fetchone()
        if row is not None and row[0] == len(_OBJECTS):
            return
        with conn.transaction():
            conn.execute(_LOCK, (self._lock_prefix,))
            for statement in _SCHEMA:
                conn.execute(self._sql(statement))

    # ------------------------------------------------------------------ errors

    def _unreachable(self, error: psycopg.OperationalError, timeout: int) -> RegistryError:
        """Why connecting failed, in words, with the one fix; the URL's password never shown."""
        reason = _first_line(error)
        lowered = reason.lower()
        head = f"cannot connect to the model registry's PostgreSQL at {self.address}"
        if "refused" in lowered:
            message, fix = (
                f"{head}: connection refused (no server is listening there)",
                f"start the PostgreSQL server, or check the host and port in {self._origin}",
            )
        elif "timeout" in lowered or "timed out" in lowered:
            message, fix = (
                f"{head}: no answer within {timeout} s",
                f"check that the host is reachable from here and the host in {self._origin}; "
                f"or raise registry.connect_timeout_s (now {self.connect_timeout_s:g})",
            )
        elif "password" in lowered or "authentication" in lowered:
            message, fix = (
                f"{head}: the server rejected the login ({reason})",
                f"check the user name and password in {self._origin}",
            )
        elif 'database "' in lowered and "does not exist" in lowered:
            message, fix = (
                f"{head}: database {self._database} does not exist",
                f"check the database name in {self._origin}, or create it: "
                f"CREATE DATABASE {self._database};",
            )
        elif 'role "' in lowered and "does not exist" in lowered:
            message, fix = (
                f"{head}: role {self._role} does not exist",
                f"check the user name in {self._origin}, or create the role: "
                f"CREATE ROLE {self._role} LOGIN;",
            )
        elif "translate host name" in lowered or "resolve" in lowered:
            message, fix = (f"{head}: {reason}", f"check the host name in {self._origin}")
        else:
            message, fix = (
                f"{head}: {reason}",
                f"check {self._origin} and that the server accepts connections "  # nosec B608
                "(`psql <url> -c 'SELECT 1'` from this machine)",
            )
        return RegistryError(message, fix=fix)

    def _grant(self, reason: str) -> str:
        """The statement that gives the registry's role what ``reason`` says it lacks."""
        role, schema = self._role, self.schema
        if "for database" in reason:
            return (
                f"GRANT CREATE ON DATABASE {self._database} TO {role}; or have an administrator "
                f"run CREATE SCHEMA {schema} AUTHORIZATION {role};"
            )
        if "for schema" in reason:
            return f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role};"
        return (
            f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {role}; "
            "(SELECT alone is enough for a process that only reads the registry)"
        )

    def _lost(self, action: str, error: psycopg.Error) -> RegistryError:
        return RegistryError(
            f"lost the connection to the model registry's PostgreSQL at {self.address} while "
            f"trying to {action} it ({_first_line(error)})",
            fix="check that the server is up, then retry (the registry reconnects by itself)",
        )

    def _failed(self, action: str, error: psycopg.Error) -> RegistryError:
        reason = _first_line(error)
        where = f"the model registry (schema {self.schema} at {self.address})"
        if isinstance(error, errors.InsufficientPrivilege):
            fix = self._grant(reason)
        elif isinstance(error, errors.UniqueViolation) and "production" in reason:
            fix = "keep one production version per model: use set_stage, which archives the other"
        else:
            fix = "check that no other program changed the registry's tables, then retry"
        return RegistryError(f"cannot {action} {where}: {reason}", fix=fix)


def _first_line(error: BaseException) -> str:
    """The server's or libpq's reason on one line, with any password redacted."""
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    text = primary if isinstance(primary, str) and primary else str(error)
    text = redact(text).strip().removeprefix("connection failed: ")
    line = text.splitlines()[0] if text else type(error).__name__
    if " failed: " in line:
        line = line.split(" failed: ", 1)[1]
    return re.sub(r"^(FATAL|ERROR):\s+", "", line).strip()
