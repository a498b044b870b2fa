"""Each interleaved user's clicks per team, read from the service's logs.

Definitions. An *interleaved answer* is a prediction-log record with ``arm`` ``interleaved``,
a ``unit`` (the user) and ``ts`` at or after the rollout's start; each of its ``items`` names
the ``team`` that drafted it (:mod:`taxiway.serving.interleave`). A click is an outcome record
(``<log parent>/outcomes``) naming the answer's ``request_id``, the ``item`` and the outcome
``name`` (the rollout metric's); its value is summed as the A/B test sums it (``true`` counts
1, ``false`` 0, a number itself). An outcome naming no item, or an item the request did not
show, credits no team and is left out. Per user: the sum over its interleaved answers of the
clicks on candidate-team items, and of those on control-team items; a user shown interleaved
lists who clicked nothing has zeros.

Cost: every check reads every answer logged since the rollout began (DuckDB over the JSON
files last written after its start, only interleaved answers kept), unlike the A/B unit
state's incremental read (:mod:`.units`): the interleaved share is small, but the scan is of
every record of those files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from taxiway.engines.duckdb import quote_literal
from taxiway.errors import RolloutError

__all__ = ["ANSWER_GLOB", "InterleavedUsers", "read_interleaved"]

ANSWER_GLOB = "predictions-*.jsonl"
_ANSWERS = (
    "{'ts': 'VARCHAR', 'request_id': 'VARCHAR', 'unit': 'VARCHAR', 'arm': 'VARCHAR', "
    "'items': 'STRUCT(item VARCHAR, team VARCHAR)[]'}"
)
_OUTCOMES = "{'request_id': 'VARCHAR', 'item': 'VARCHAR', 'name': 'VARCHAR', 'value': 'JSON'}"


@dataclass(frozen=True)
class InterleavedUsers:
    """Per interleaved user (``users``, sorted), clicks on each team's items; and how many
    interleaved answers were read."""

    users: list[str]
    candidate: npt.NDArray[np.float64]
    control: npt.NDArray[np.float64]
    answers: int


def read_interleaved(
    log_folder: Path, outcomes_folder: Path, *, outcome: str, since: datetime
) -> InterleavedUsers:
    """The interleaved users since ``since`` and their clicks (outcome ``outcome``) per team
    (see the module). Folders without files give no users."""
    empty = InterleavedUsers([], np.zeros(0), np.zeros(0), 0)
    answer_files = _written_since(Path(log_folder), since)
    outcome_files = _written_since(Path(outcomes_folder), since)
    if not answer_files:
        return empty
    con = duckdb.connect()
    try:
        rows, answers_read = _credits(con, answer_files, outcome_files, outcome, since)
    except duckdb.Error as error:  # a file rotated away mid-read, say: the next check reads again
        raise RolloutError(
            f"the interleaved answers could not be read: {error}",
            fix="check again (the logs are read whole at every check); if it persists, check "
            "the prediction log folder",
        ) from None
    finally:
        con.close()
    return InterleavedUsers(
        users=[str(row[0]) for row in rows],
        candidate=np.array([float(row[1] or 0.0) for row in rows], dtype=np.float64),
        control=np.array([float(row[2] or 0.0) for row in rows], dtype=np.float64),
        answers=answers_read,
    )


def _credits(
    con: duckdb.DuckDBPyConnection,
    answer_files: list[Path],
    outcome_files: list[Path],
    outcome: str,
    since: datetime,
) -> tuple[list[tuple[Any, ...]], int]:
    """Per user (sorted): clicks on candidate-team items, on control-team items; and the
    interleaved answers read."""
    con.execute(
        "CREATE TEMP VIEW answers AS SELECT request_id, unit, unnest(items) AS shown "
        f"FROM {_read(answer_files, _ANSWERS)} WHERE arm = 'interleaved' AND unit IS NOT NULL "
        "AND items IS NOT NULL AND request_id IS NOT NULL "
        f"AND TRY_CAST(ts AS TIMESTAMPTZ) >= {quote_literal(since.isoformat())}::TIMESTAMPTZ"
    )
    answers_read = con.execute("SELECT count(DISTINCT request_id) FROM answers").fetchone()
    if outcome_files:
        con.execute(
            "CREATE TEMP VIEW clicks AS SELECT request_id, item, SUM(CASE json_type(value) "
            "WHEN 'BOOLEAN' THEN (value::BOOLEAN)::INTEGER::DOUBLE "
            "ELSE TRY_CAST(value::VARCHAR AS DOUBLE) END) AS value "
            f"FROM {_read(outcome_files, _OUTCOMES)} WHERE name = {quote_literal(outcome)} "
            "AND request_id IS NOT NULL AND item IS NOT NULL GROUP BY request_id, item"
        )
    else:
        con.execute(
            "CREATE TEMP VIEW clicks AS SELECT NULL::VARCHAR AS request_id, "
            "NULL::VARCHAR AS item, NULL::DOUBLE AS value WHERE false"
        )
    rows = con.execute(
        "SELECT a.unit, "
        "SUM(CASE WHEN a.shown.team = 'candidate' THEN COALESCE(c.value, 0) ELSE 0 END), "
        "SUM(CASE WHEN a.shown.team = 'control' THEN COALESCE(c.value, 0) ELSE 0 END) "
        "FROM answers a LEFT JOIN clicks c "
        "ON a.request_id = c.request_id AND a.shown.item = c.item "
        "GROUP BY a.unit ORDER BY a.unit"
    ).fetchall()
    return rows, int(answers_read[0]) if answers_read else 0


def _written_since(folder: Path, since: datetime) -> list[Path]:
    """The log files of ``folder`` last written at or after ``since`` (an older file holds no
    record of the rollout), sorted."""
    cutoff = since.timestamp()
    files = []
    for path in sorted(folder.glob(ANSWER_GLOB)):
        try:
            if path.stat().st_mtime >= cutoff:
                files.append(path)
        except FileNotFoundError:  # deleted by retention meanwhile
            continue
    return files


def _read(files: list[Path], columns: str) -> str:
    """A ``read_json`` over ``files`` with ``columns``; a torn line reads as a row of nulls,
    which every query here filters out."""
    listed = ", ".join(quote_literal(str(path)) for path in files)
    return (
        f"read_json([{listed}], format = 'newline_delimited', ignore_errors = true, "
        f"columns = {columns})"
    )
