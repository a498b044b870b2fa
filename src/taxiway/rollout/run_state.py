"""`taxiway run`'s state in the registry's database: one JSON document per model.

The scheduler keeps when its last retrain ran and the alert episodes it acted on
(:mod:`taxiway.rollout.run`) in the table ``run_state`` beside the registry's own: the SQLite
file of a SQLite registry, the schema of a PostgreSQL one. So every `taxiway run` sharing a
registry shares its state, and the one that takes the retrain lock over from a dead holder
knows what the holder did. A write replaces the model's row in one statement, so a reader
sees the old state or the new, never half. The table is created on first use.

Both backends run the same statements (:mod:`taxiway.models.registry.side_tables`) on a
connection opened per call (a tick reads once and writes at most once).

>>> import tempfile
>>> state = SqliteRunState(Path(tempfile.mkdtemp()) / "registry.sqlite")
>>> state.read("churn")
{}
>>> state.write("churn", {"last_retrain": {"at": "2026-01-05T00:00:00+00:00"}})
>>> state.read("churn")["last_retrain"]["at"]
'2026-01-05T00:00:00+00:00'
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from taxiway.errors import RolloutError
from taxiway.models.registry.side_tables import (
    Database,
    PostgresDatabase,
    SideTables,
    SqliteDatabase,
    open_side_tables,
)
from taxiway.spec.project import Project

__all__ = ["PostgresRunState", "RunState", "SqliteRunState", "open_run_state"]

_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.run_state "
    "(name TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL)"
)
_TABLES = SideTables("run_state", sqlite=(_DDL,), postgres=(_DDL,))


class RunState(Protocol):
    """The scheduler's state of each model, where the registry lives."""

    where: str

    def read(self, name: str) -> dict[str, Any]:
        """``name``'s state (empty when none was written)."""
        ...

    def write(self, name: str, state: dict[str, Any]) -> None:
        """Replace ``name``'s state with ``state``."""
        ...


class _State:
    """The table ``run_state`` in ``database``; the same statements on both backends."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.where = database.where

    def read(self, name: str) -> dict[str, Any]:
        with self._database.session("read") as session:
            found = session.rows("SELECT state FROM {schema}.run_state WHERE name = %s", (name,))
        return _document(found[0] if found else None)

    def write(self, name: str, state: dict[str, Any]) -> None:
        with self._database.session("write") as session:
            session.execute(
                "INSERT INTO {schema}.run_state (name, state, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (name, _text(state), datetime.now(UTC).isoformat()),
            )


class SqliteRunState(_State):
    """The table ``run_state`` in the registry's SQLite file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(SqliteDatabase(self.path, _TABLES, _error))


class PostgresRunState(_State):
    """The table ``<schema>.run_state`` in the registry's PostgreSQL database."""

    def __init__(self, url: str, *, schema: str, connect_timeout_s: float = 10.0) -> None:
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        database = PostgresDatabase(
            url, _TABLES, _error, schema=schema, connect_timeout_s=connect_timeout_s
        )
        super().__init__(database)


def open_run_state(project: Project) -> RunState:
    """The scheduler's state where ``project``'s registry lives (no ``registry:``: the SQLite
    file ``<state dir>/registry.sqlite``)."""
    return open_side_tables(
        project, "the scheduler's state", RolloutError, SqliteRunState, PostgresRunState
    )


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


def _error(action: str, where: str, reason: str) -> RolloutError:
    return RolloutError(
        f"cannot {action} the scheduler's state in the registry at {where}: {reason}",
        fix="check that the registry's database is reachable and writable",
    )
