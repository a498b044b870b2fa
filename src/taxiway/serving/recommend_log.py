"""Impressions joined to outcomes: one row per item shown, with what happened to it.

The recommendation service logs each answer's full list (``items``: item, position from 1,
score, stage) in the prediction log; ``POST /v1/outcomes`` appends outcomes (a click, a
purchase...) naming the ``request_id`` and the ``item``. An impression is one (request, item)
shown; its outcome ``<name>`` is the sum of the values posted for that request, item and name
(``true`` counts 1, ``false`` 0), null when none was posted. Outcomes naming an item the request
did not show, or no item, or only a unit, join no impression and are left out; an impression
with no outcome is kept (that is what click-through by position divides by).

An interleaved answer (``arm`` ``interleaved``, :mod:`taxiway.serving.interleave`) names each
item's ``team`` (``control`` or ``candidate``); other answers' items have none (null).

The result's columns: ``request_id, ts, unit, arm, model_version, path, degraded, position,
item, score, stage, team``, then ``outcome_<name>`` (float64) per outcome name found, sorted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from taxiway.engines.duckdb import quote_identifier, quote_literal
from taxiway.serving.log_files import log_files
from taxiway.serving.log_reader import read_predictions

__all__ = ["IMPRESSION_COLUMNS", "join_impressions"]

_SHOWN = {
    "request_id": "VARCHAR",
    "ts": "VARCHAR",
    "unit": "VARCHAR",
    "arm": "VARCHAR",
    "model_version": "BIGINT",
    "path": "VARCHAR",
    "degraded": "BOOLEAN",
    "items": (
        "STRUCT(item VARCHAR, position INTEGER, score DOUBLE, stage VARCHAR, team VARCHAR)[]"
    ),
}
_OUTCOMES = {"request_id": "VARCHAR", "item": "VARCHAR", "name": "VARCHAR", "value": "JSON"}
_IMPRESSION_FIELDS: list[pa.Field[Any]] = [
    pa.field("request_id", pa.string()),
    pa.field("ts", pa.string()),
    pa.field("unit", pa.string()),
    pa.field("arm", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("path", pa.string()),
    pa.field("degraded", pa.bool_()),
    pa.field("position", pa.int32()),
    pa.field("item", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("stage", pa.string()),
    pa.field("team", pa.string()),
]
IMPRESSION_COLUMNS = pa.schema(_IMPRESSION_FIELDS)
"""The impression columns of :func:`join_impressions`'s table, before the outcomes'."""


def join_impressions(log_folder: Path, outcomes_folder: Path) -> pa.Table:
    """Every item shown (one row per request and position) with its outcomes' values.

    ``log_folder`` is the service's prediction log folder, ``outcomes_folder`` its outcomes
    log folder (``<state>/predictions`` and ``<state>/outcomes`` by default). Either may hold
    no file yet: no rows, or no outcome columns.
    """
    if not log_files(Path(log_folder)):
        return IMPRESSION_COLUMNS.empty_table()
    con = duckdb.connect()
    try:
        read_predictions(con, Path(log_folder), "shown", columns=_SHOWN)
        impressions = (
            "SELECT request_id, ts, unit, arm, model_version, path, degraded, "
            "shown.position::INTEGER AS position, shown.item AS item, shown.score AS score, "
            "shown.stage AS stage, shown.team AS team FROM (SELECT *, unnest(items) AS shown FROM shown "
            "WHERE items IS NOT NULL)"
        )
        names: list[str] = []
        if log_files(Path(outcomes_folder)):
            read_predictions(con, Path(outcomes_folder), "posted", columns=_OUTCOMES)
            con.execute(
                "CREATE TEMP VIEW outcomes AS SELECT request_id, item, name, "
                "CASE json_type(value) WHEN 'BOOLEAN' THEN (value::BOOLEAN)::INTEGER::DOUBLE "
                "ELSE TRY_CAST(value::VARCHAR AS DOUBLE) END AS value FROM posted "
                "WHERE request_id IS NOT NULL AND item IS NOT NULL AND name IS NOT NULL"
            )
            names = [row[0] for row in con.execute("SELECT DISTINCT name FROM outcomes").fetchall()]
            names.sort()
        if not names:
            query = f"{impressions} ORDER BY ts, request_id, position"
            return _typed(con.sql(query).to_arrow_table(), [])
        sums = ", ".join(
            f"SUM(value) FILTER (WHERE name = {quote_literal(n)}) AS {quote_identifier(_column(n))}"
            for n in names
        )
        picked = ", ".join(f"o.{quote_identifier(_column(n))}" for n in names)
        query = (
            f"WITH i AS ({impressions}), o AS (SELECT request_id, item, {sums} FROM outcomes "  # nosec B608
            f"GROUP BY request_id, item) SELECT i.*, {picked} FROM i LEFT JOIN o "
            f"ON i.request_id = o.request_id AND i.item = o.item "
            f"ORDER BY i.ts, i.request_id, i.position"
        )
        return _typed(con.sql(query).to_arrow_table(), [_column(n) for n in names])
    finally:
        con.close()


def _column(name: str) -> str:
    """The column of outcome ``name``.

    >>> _column("click"), _column("add to cart")
    ('outcome_click', 'outcome_add_to_cart')
    """
    return "outcome_" + re.sub(r"\W", "_", name)


def _typed(table: pa.Table | None, outcomes: list[str]) -> pa.Table:
    assert table is not None  # a query always gives a table  # nosec B101
    schema = pa.schema([*_IMPRESSION_FIELDS, *(pa.field(n, pa.float64()) for n in outcomes)])
    return table.select(schema.names).cast(schema)
