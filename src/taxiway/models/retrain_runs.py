"""The record of each finished `taxiway retrain` run, in the registry's database.

One row per run in the table ``retrain_runs`` beside the registry's own (the SQLite file of a
SQLite registry, the schema of a PostgreSQL one), written once, at the end of the run, in one
transaction: so every host sharing a registry reads every host's runs (`taxiway models
history`), and a version a retrain registered that no row names was left by a run that never
finished (:mod:`taxiway.models.retrain` reports it and does not count new rows against it).

A ``<state dir>/retrain/runs.jsonl`` written before this table existed is imported once, on
first use, and renamed ``runs.jsonl.imported`` (each line keyed by its hash, so an import cut
short is redone without doubles). The table is created on first use.

>>> import tempfile
>>> runs = SqliteRetrainRuns(Path(tempfile.mkdtemp()) / "registry.sqlite")
>>> runs.add([("run-1", {"name": "churn", "gate": "candidate", "candidate": 2})])
>>> [run["candidate"] for run in runs.read("churn")]
[2]
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from taxiway.errors import ModelError
from taxiway.models.registry.side_tables import (
    Database,
    PostgresDatabase,
    SideTables,
    SqliteDatabase,
    open_side_tables,
)
from taxiway.spec.project import Project

__all__ = [
    "PostgresRetrainRuns",
    "RetrainRuns",
    "SqliteRetrainRuns",
    "open_retrain_runs",
    "read_retrain_runs",
    "record_retrain_run",
]

_COLUMNS = "(id, name, recorded_at, candidate, gate, run)"
_TABLES = SideTables(
    "retrain_runs",
    sqlite=(
        "CREATE TABLE IF NOT EXISTS {schema}.retrain_runs (seq INTEGER PRIMARY KEY, "
        "id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, recorded_at TEXT NOT NULL, "
        "candidate INTEGER, gate TEXT NOT NULL, run TEXT NOT NULL)",
    ),
    postgres=(
        "CREATE TABLE IF NOT EXISTS {schema}.retrain_runs (seq BIGSERIAL PRIMARY KEY, "
        "id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, recorded_at TEXT NOT NULL, "
        "candidate INTEGER, gate TEXT NOT NULL, run TEXT NOT NULL)",
    ),
)
Row = tuple[str, dict[str, Any]]
"""A run's unique id and its record (``RetrainResult.as_dict``)."""


class RetrainRuns(Protocol):
    """The finished retrain runs, where the registry lives."""

    where: str

    def add(self, rows: list[Row]) -> None:
        """Record ``rows`` in one transaction (an id already recorded is skipped)."""
        ...

    def read(self, name: str) -> list[dict[str, Any]]:
        """Every run of model ``name``, oldest first."""
        ...


class _Runs:
    """The table ``retrain_runs`` in ``database``; the same statements on both backends."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.where = database.where

    def add(self, rows: list[Row]) -> None:
        with self._database.transaction("record") as session:
            session.executemany(
                "INSERT INTO {schema}.retrain_runs " + _COLUMNS + " VALUES "
                "(%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                [_values(row) for row in rows],
            )

    def read(self, name: str) -> list[dict[str, Any]]:
        with self._database.session("read") as session:
            found = session.rows(
                "SELECT run FROM {schema}.retrain_runs WHERE name = %s ORDER BY seq", (name,)
            )
        return _documents(found)


class SqliteRetrainRuns(_Runs):
    """The table ``retrain_runs`` in the registry's SQLite file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(SqliteDatabase(self.path, _TABLES, _error))


class PostgresRetrainRuns(_Runs):
    """The table ``<schema>.retrain_runs`` in the registry's PostgreSQL database."""

    def __init__(self, url: str, *, schema: str, connect_timeout_s: float = 10.0) -> None:
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        database = PostgresDatabase(
            url, _TABLES, _error, schema=schema, connect_timeout_s=connect_timeout_s
        )
        super().__init__(database)


def open_retrain_runs(project: Project) -> RetrainRuns:
    """The runs' table where ``project``'s registry lives (no ``registry:``: the SQLite file
    ``<state dir>/registry.sqlite``)."""
    return open_side_tables(
        project, "the retrain runs", ModelError, SqliteRetrainRuns, PostgresRetrainRuns
    )


def record_retrain_run(project: Project, run_id: str, run: dict[str, Any]) -> None:
    """Record the finished run ``run`` (``RetrainResult.as_dict``) under ``run_id``."""
    runs = open_retrain_runs(project)
    _import_file(project, runs)
    runs.add([(run_id, run)])


def read_retrain_runs(project: Project) -> list[dict[str, Any]]:
    """Every finished run of ``project``'s model, from every host, oldest first."""
    runs = open_retrain_runs(project)
    _import_file(project, runs)
    return runs.read(project.spec.name)


def _import_file(project: Project, runs: RetrainRuns) -> None:
    """Move the runs of a ``runs.jsonl`` written before the table into it, once."""
    path = project.state_dir / "retrain" / "runs.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    rows: list[Row] = []
    for line in text.splitlines():
        try:
            run = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill
        if isinstance(run, dict) and isinstance(run.get("name"), str):
            rows.append(("jsonl:" + hashlib.sha256(line.encode()).hexdigest(), run))
    if rows:
        runs.add(rows)
    path.replace(path.with_name("runs.jsonl.imported"))


def _values(row: Row) -> tuple[str, str, str, int | None, str, str]:
    run_id, run = row
    candidate = run.get("candidate")
    return (
        run_id,
        str(run.get("name")),
        datetime.now(UTC).isoformat(),
        candidate if isinstance(candidate, int) else None,
        str(run.get("gate")),
        json.dumps(run, sort_keys=True, default=str),
    )


def _documents(found: list[Any]) -> list[dict[str, Any]]:
    runs = []
    for (text,) in found:
        try:
            run = json.loads(text)
        except ValueError:
            continue
        if isinstance(run, dict):
            runs.append(run)
    return runs


def _error(action: str, where: str, reason: str) -> ModelError:
    return ModelError(
        f"cannot {action} the retrain runs in the registry at {where}: {reason}",
        fix="check that the registry's database is reachable and writable",
    )
