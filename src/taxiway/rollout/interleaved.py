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

Cost: every check reads the whole logs since the rollout began (DuckDB over the JSON files,
only interleaved answers kept), unlike the A/B unit state's incremental read
(:mod:`.units`): the interleaved share is small, but the scan is of every record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt

from taxiway.engines.duckdb import quote_literal

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
    log_folder, outcomes_folder = Path(log_folder), Path(outcomes_folder)
    if not any(log_folder.glob(ANSWER_GLOB)):
        return empty
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TEMP VIEW answers AS SELECT request_id, unit, unnest(items) AS shown "
            f"FROM {_read(log_folder, _ANSWERS)} WHERE arm = 'interleaved' AND unit IS NOT NULL "
            "AND items IS NOT NULL AND request_id IS NOT NULL "
            f"AND TRY_CAST(ts AS TIMESTAMPTZ) >= {quote_literal(since.isoformat())}::TIMESTAMPTZ"
        )
        answers_read = con.execute("SELECT count(DISTINCT request_id) FROM answers").fetchone()
        if any(outcomes_folder.glob(ANSWER_GLOB)):
            con.execute(
                "CREATE TEMP VIEW clicks AS SELECT request_id, item, SUM(CASE json_type(value) "
                "WHEN 'BOOLEAN' THEN (value::BOOLEAN)::INTEGER::DOUBLE "
                "ELSE TRY_CAST(value::VARCHAR AS DOUBLE) END) AS value "
                f"FROM {_read(outcomes_folder, _OUTCOMES)} WHERE name = {quote_literal(outcome)} "
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
    finally:
        con.close()
    return InterleavedUsers(
        users=[str(row[0]) for row in rows],
        candidate=np.array([float(row[1] or 0.0) for row in rows], dtype=np.float64),
        control=np.array([float(row[2] or 0.0) for row in rows], dtype=np.float64),
        answers=int(answers_read[0]) if answers_read else 0,
    )


def _read(folder: Path, columns: str) -> str:
    """A ``read_json`` over the log files of ``folder`` with ``columns``; a torn line reads
    as a row of nulls, which every query here filters out."""
    glob = quote_literal(str(folder / ANSWER_GLOB))
    return (
        f"read_json({glob}, format = 'newline_delimited', ignore_errors = true, "
        f"columns = {columns})"
    )
