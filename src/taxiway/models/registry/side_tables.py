"""Tables beside the registry's own, in its database: opened by its SQLite path or PostgreSQL
URL, created on first use, one statement text for both.

The retrain runs (:mod:`taxiway.models.retrain_runs`), the scheduler's state
(:mod:`taxiway.rollout.run_state`) and the approvals log (:mod:`taxiway.sprint.approvals_postgres`)
each keep a few rows where the registry lives, so that every host sharing the registry shares
them. What they share is here: where the registry's database is (:func:`registry_location`),
one connection per call with the tables made first (``CREATE ... IF NOT EXISTS`` per dialect;
in PostgreSQL under an advisory lock, so two first users do not race), statements written once
with ``{schema}.table`` and ``%s`` (SQLite: ``main.table`` and ``?``), transactions (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: a transaction, under an advisory lock when asked), and every
database error turned into the caller's own :class:`TaxiwayError` by its ``failed``.

psycopg (the postgres extra) is imported only when a PostgreSQL database is opened.

>>> import tempfile
>>> runs = SideTables(
...     "demo",
...     sqlite=("CREATE TABLE IF NOT EXISTS {schema}.demo (k TEXT PRIMARY KEY, v TEXT)",),
...     postgres=("CREATE TABLE IF NOT EXISTS {schema}.demo (k TEXT PRIMARY KEY, v TEXT)",),
... )
>>> def failed(action, where, reason):
...     return TaxiwayError(f"cannot {action} the demo at {where}: {reason}")
>>> db = SqliteDatabase(Path(tempfile.mkdtemp()) / "registry.sqlite", runs, failed)
>>> with db.transaction("write") as session:
...     session.execute("INSERT INTO {schema}.demo (k, v) VALUES (%s, %s)", ("a", "1"))
>>> with db.session("read") as session:
...     session.rows("SELECT v FROM {schema}.demo WHERE k = %s", ("a",))
[('1',)]
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString, Protocol, TypeVar

from taxiway.errors import TaxiwayError
from taxiway.spec.models import PostgresRegistry
from taxiway.spec.project import Project
from taxiway.spec.secrets import redact

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "Database",
    "Failed",
    "PostgresDatabase",
    "PostgresLocation",
    "Session",
    "SideTables",
    "SqliteDatabase",
    "open_side_tables",
    "registry_location",
    "registry_url",
]

DEFAULT_SQLITE_FILE = "registry.sqlite"
"""The registry's SQLite file in the state folder when the spec names none (as open_registry)."""
BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite statement waits for another writer's lock before it fails."""
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"

Failed = Callable[[str, str, str], TaxiwayError]
"""The caller's error for a database failure: ``failed(action, where, reason)``."""
Params = Sequence[Any]
T = TypeVar("T")


@dataclass(frozen=True)
class SideTables:
    """The create-if-missing statements of a few tables, per dialect (``{schema}.`` before
    each table). ``name`` names their advisory lock and the PostgreSQL application."""

    name: str
    sqlite: tuple[LiteralString, ...]
    postgres: tuple[LiteralString, ...]


@dataclass(frozen=True)
class PostgresLocation:
    """A PostgreSQL registry: its revealed URL, schema and connect timeout."""

    url: str
    schema: str
    connect_timeout_s: float


def registry_url(registry: PostgresRegistry, what: str, error: type[TaxiwayError]) -> str:
    """``registry.url`` revealed; an unset variable or unreadable file is ``error`` naming
    ``what`` the URL was read for."""
    try:
        return registry.url.reveal()
    except TaxiwayError as problem:
        raise error(
            f"cannot read registry.url for {what}: {problem.message}", fix=problem.fix
        ) from None


def registry_location(
    project: Project, what: str, error: type[TaxiwayError]
) -> Path | PostgresLocation:
    """Where ``project``'s registry lives: its SQLite file (no ``registry:``:
    ``<state dir>/registry.sqlite``) or its PostgreSQL database."""
    registry = project.spec.registry
    if isinstance(registry, PostgresRegistry):
        url = registry_url(registry, what, error)
        return PostgresLocation(url, registry.schema_name, registry.connect_timeout_s)
    if registry is not None and registry.path:
        return Path(registry.path)
    return project.state_dir / DEFAULT_SQLITE_FILE


def open_side_tables(
    project: Project,
    what: str,
    error: type[TaxiwayError],
    sqlite: Callable[[Path], T],
    postgres: Callable[..., T],
) -> T:
    """``sqlite(path)`` or ``postgres(url, schema=, connect_timeout_s=)``, whichever backend
    ``project``'s registry is on (see :func:`registry_location`)."""
    location = registry_location(project, what, error)
    if isinstance(location, Path):
        return sqlite(location)
    return postgres(
        location.url, schema=location.schema, connect_timeout_s=location.connect_timeout_s
    )


class Session:
    """Statements on one connection, in the one text both dialects share."""

    def __init__(self, connection: Any, render: Callable[[LiteralString], Any]) -> None:
        self.connection = connection
        self._render = render

    def execute(self, statement: LiteralString, params: Params = ()) -> None:
        """Run ``statement`` (no rows wanted)."""
        self._run(statement, params)

    def executemany(self, statement: LiteralString, rows: Iterable[Params]) -> None:
        """Run ``statement`` once per item of ``rows``."""
        cursor = self.connection.cursor()
        try:
            cursor.executemany(self._render(statement), list(rows))
        finally:
            cursor.close()

    def rows(self, statement: LiteralString, params: Params = ()) -> list[tuple[Any, ...]]:
        """The rows ``statement`` selects."""
        return list(self._run(statement, params).fetchall())

    def _run(self, statement: LiteralString, params: Params) -> Any:
        text = self._render(statement)
        return self.connection.execute(text, params) if params else self.connection.execute(text)


class Database(Protocol):
    """The registry's database, for a caller's side tables."""

    where: str

    def session(self, action: str) -> contextlib.AbstractContextManager[Session]:
        """A connection, the tables made, each statement committed on its own."""
        ...

    def transaction(
        self, action: str, lock: str | None = None
    ) -> contextlib.AbstractContextManager[Session]:
        """A connection in one transaction, committed at the end (rolled back on an error);
        ``lock`` names the PostgreSQL advisory lock it holds (SQLite takes its write lock)."""
        ...


class SqliteDatabase:
    """``tables`` in the registry's SQLite file ``path``."""

    def __init__(self, path: Path, tables: SideTables, failed: Failed) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.tables = tables
        self._failed = failed

    @contextlib.contextmanager
    def session(self, action: str) -> Iterator[Session]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise self._failed(action, self.where, str(error)) from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            session = Session(connection, _sqlite_text)
            for statement in self.tables.sqlite:
                session.execute(statement)
            yield session
        except sqlite3.Error as error:
            raise self._failed(action, self.where, str(error)) from None
        finally:
            connection.close()

    @contextlib.contextmanager
    def transaction(self, action: str, lock: str | None = None) -> Iterator[Session]:
        with self.session(action) as session:
            session.execute("BEGIN IMMEDIATE")
            try:
                yield session
            except BaseException:
                session.connection.rollback()
                raise
            session.execute("COMMIT")


class PostgresDatabase:
    """``tables`` in schema ``schema`` of the registry's PostgreSQL database at ``url``."""

    def __init__(
        self,
        url: str,
        tables: SideTables,
        failed: Failed,
        *,
        schema: str,
        connect_timeout_s: float = 10.0,
        where: str | None = None,
    ) -> None:
        self._url = url
        self.tables = tables
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self.where = where or f"postgresql (schema {schema})"
        self._failed = failed

    @contextlib.contextmanager
    def session(self, action: str) -> Iterator[Session]:
        import psycopg  # the postgres extra: only a PostgreSQL registry needs it

        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(2, math.ceil(self.connect_timeout_s)),  # libpq: >= 2 s
                application_name=f"taxiway-{self.tables.name}",
            )
        except psycopg.Error as error:
            raise self._failed(action, self.where, _reason(error)) from None
        try:
            session = Session(conn, self._text)
            with conn.transaction():
                session.execute(_LOCK, (f"taxiway.{self.tables.name}:{self.schema}",))
                session.execute("CREATE SCHEMA IF NOT EXISTS {schema}")
                for statement in self.tables.postgres:
                    session.execute(statement)
            yield session
        except psycopg.Error as error:
            raise self._failed(action, self.where, _reason(error)) from None
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self, action: str, lock: str | None = None) -> Iterator[Session]:
        with self.session(action) as session, session.connection.transaction():
            if lock is not None:
                session.execute(_LOCK, (lock,))
            yield session

    def _text(self, statement: LiteralString) -> Any:
        from psycopg import sql

        return sql.SQL(statement).format(schema=sql.Identifier(self.schema))


def _sqlite_text(statement: LiteralString) -> str:
    return statement.format(schema="main").replace("%s", "?")


def _reason(error: psycopg.Error) -> str:
    """The server's first line (or the client's), every URL password masked."""
    diag = getattr(error, "diag", None)
    text = getattr(diag, "message_primary", None) or str(error) or type(error).__name__
    lines = redact(str(text)).strip().splitlines()
    return lines[0] if lines else type(error).__name__
