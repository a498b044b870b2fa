"""`taxiway run`'s state in the registry's database: one JSON document per model.

The scheduler keeps when its last retrain ran and the alert episodes it acted on
(:mod:`taxiway.rollout.run`) in the table ``run_state`` beside the registry's own: the SQLite
file of a SQLite registry, the schema of a PostgreSQL one. So every `taxiway run` sharing a
registry shares its state, and the one that takes the retrain lock over from a dead holder
knows what the holder did. A write replaces the model's row in one statement, so a reader
sees the old state or the new, never half. The table is created on first use.

Both backends fit here: each is three statements on a connection opened per call (a tick
reads once and writes at most once).

>>> import tempfile
>>> state = SqliteRunState(Path(tempfile.mkdtemp()) / "registry.sqlite")
>>> state.read("churn")
{}
>>> state.write("churn", {"last_retrain": {"at": "2026-01-05T00:00:00+00:00"}})
>>> state.read("churn")["last_retrain"]["at"]
'2026-01-05T00:00:00+00:00'
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from taxiway.errors import RolloutError, TaxiwayError
from taxiway.spec.models import PostgresRegistry
from taxiway.spec.project import Project

__all__ = ["PostgresRunState", "RunState", "SqliteRunState", "open_run_state"]

_BUSY_TIMEOUT_MS = 30_000


class RunState(Protocol):
    """The scheduler's state of each model, where the registry lives."""

    where: str

    def read(self, name: str) -> dict[str, Any]:
        """``name``'s state (empty when none was written)."""
        ...

    def write(self, name: str, state: dict[str, Any]) -> None:
        """Replace ``name``'s state with ``state``."""
        ...


class SqliteRunState:
    """The table ``run_state`` in the registry's SQLite file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def read(self, name: str) -> dict[str, Any]:
        with self._connection("read") as connection:
            row = connection.execute(
                "SELECT state FROM run_state WHERE name = ?", (name,)
            ).fetchone()
        return _document(row)

    def write(self, name: str, state: dict[str, Any]) -> None:
        with self._connection("write") as connection:
            connection.execute(
                "INSERT INTO run_state (name, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (name, _text(state), datetime.now(UTC).isoformat()),
            )

    @contextlib.contextmanager
    def _connection(self, action: str) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise _error(action, self.where, error) from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS run_state "
                "(name TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL)"
            )
            yield connection
        except sqlite3.Error as error:
            raise _error(action, self.where, error) from None
        finally:
            connection.close()


class PostgresRunState:
    """The table ``<schema>.run_state`` in the registry's PostgreSQL database."""

    def __init__(self, url: str, *, schema: str, connect_timeout_s: float = 10.0) -> None:
        self._url = url
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self.where = f"postgresql (schema {schema})"

    def read(self, name: str) -> dict[str, Any]:
        from psycopg import sql

        with self._connection("read") as conn:
            row = conn.execute(
                sql.SQL("SELECT state FROM {}.run_state WHERE name = %s").format(
                    sql.Identifier(self.schema)
                ),
                (name,),
            ).fetchone()
        return _document(row)

    def write(self, name: str, state: dict[str, Any]) -> None:
        from psycopg import sql

        with self._connection("write") as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.run_state (name, state, updated_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at"
                ).format(sql.Identifier(self.schema)),
                (name, _text(state), datetime.now(UTC).isoformat()),
            )

    @contextlib.contextmanager
    def _connection(self, action: str) -> Any:
        import psycopg  # the postgres extra: only a PostgreSQL registry needs it
        from psycopg import sql

        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout_s))
            )
        except psycopg.Error as error:
            raise _error(action, self.where, error) from None
        try:
            schema = sql.Identifier(self.schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.run_state "
                    "(name TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL)"
                ).format(schema)
            )
            yield conn
        except psycopg.Error as error:
            raise _error(action, self.where, error) from None
        finally:
            conn.close()


def open_run_state(project: Project) -> RunState:
    """The scheduler's state where ``project``'s registry lives (no ``registry:``: the SQLite
    file ``<state dir>/registry.sqlite``)."""
    registry = project.spec.registry
    if isinstance(registry, PostgresRegistry):
        try:
            url = registry.url.reveal()
        except TaxiwayError as error:
            raise RolloutError(
                f"cannot read registry.url for the scheduler's state: {error.message}",
                fix=error.fix,
            ) from None
        return PostgresRunState(
            url, schema=registry.schema_name, connect_timeout_s=registry.connect_timeout_s
        )
    path = (
        Path(registry.path)
        if registry is not None and registry.path
        else project.state_dir / "registry.sqlite"
    )
    return SqliteRunState(path)


def _text(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, default=str)


def _document(row: Any) -> dict[str, Any]:
    if row is None:
        return {}
    try:
        data = json.loads(row[0])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(action: str, where: str, error: Exception) -> RolloutError:
    return RolloutError(
        f"cannot {action} the scheduler's state in the registry at {where}: {error}",
        fix="check that the registry's database is reachable and writable",
    )
