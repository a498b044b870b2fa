"""The SQL a validation runs over a source: one aggregate pass, uniqueness, failing samples.

Written once, in DuckDB's dialect, for any engine of :mod:`taxiway.engines.sql` (Spark
transpiles it). Where DuckDB has a faster form Spark lacks (a list of duplicated keys sliced
in the counting pass, a list parameter), a portable engine gets the portable one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from taxiway.data.contracts.rules import Rule, RulePlan
from taxiway.engines.duckdb import quote_identifier
from taxiway.engines.sql import SqlEngine
from taxiway.errors import SourceError, TaxiwayError

__all__ = ["MASK", "SAMPLE_ROWS", "Measures", "SourceQuery", "measure", "samples"]

MASK = "***"
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class SourceQuery:
    engine: SqlEngine
    source: str

    def one(self, sql: str) -> tuple[Any, ...]:
        try:
            row = self.engine.fetch_one(sql)
        except (duckdb.Error, TaxiwayError) as error:
            raise SourceError(
                f"source `{self.source}`: validation query failed: {_first_line(error)}",
                fix=getattr(error, "fix", None)
                or "check the contract's rules against the source's columns",
            ) from None
        assert row is not None  # nosec B101
        return tuple(row)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        if params:  # only DuckDB gets a parameter (see samples)
            con = self.engine.con  # type: ignore[attr-defined]
            cursor = con.execute(sql, params)
            names = [column[0] for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return self.engine.rows(sql)


def _first_line(error: BaseException) -> str:
    text = error.message if isinstance(error, TaxiwayError) else str(error)
    return text.splitlines()[0] if text else type(error).__name__


@dataclass
class Measures:
    """What the aggregate pass measured: rows, failing rows per rule, newest freshness values."""

    rows: int
    failing_counts: list[Any]
    newest: tuple[Any, ...]
    duplicated: dict[int, list[Any]]  # rule index -> up to SAMPLE_ROWS duplicated keys


def measure(query: SourceQuery, relation: str, plan: RulePlan) -> Measures:
    """One pass: row count, failing rows per rule, newest value per freshness column."""
    measures = ["count(*)"]
    for rule in plan.rules:
        measures.append(_failing_sql(rule))
    for fresh in plan.freshness:
        measures.append(f"max({quote_identifier(fresh.column)})")
    values = query.one(f"SELECT {', '.join(measures)} FROM {relation}")  # nosec B608
    rows = int(values[0])
    failing_counts = list(values[1 : 1 + len(plan.rules)])
    newest = values[1 + len(plan.rules) :]
    # uniqueness: one GROUP BY per rule gives both the count and a few duplicated keys
    duplicated: dict[int, list[Any]] = {}
    for index, rule in enumerate(plan.rules):
        if rule.unique_over is not None:
            failing_counts[index], duplicated[index] = _duplicates(query, relation, rule)

    return Measures(rows, failing_counts, newest, duplicated)


def _failing_sql(rule: Rule) -> str:
    if rule.row_check is not None:
        return f"count(*) FILTER (WHERE NOT coalesce(({rule.row_check}), FALSE))"
    return "NULL"  # uniqueness is counted by _duplicates, the rest is not row-level


def _duplicates(query: SourceQuery, relation: str, rule: Rule) -> tuple[int, list[Any]]:
    """Extra rows of duplicated keys, and up to SAMPLE_ROWS of those keys, in one pass."""
    assert rule.unique_over is not None  # nosec B101
    cols = [quote_identifier(c) for c in rule.unique_over]
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    if query.engine.portable:  # no list slices on Spark: samples find the keys again
        (count,) = query.one(
            f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {relation} "  # nosec B608
            f"WHERE {present} GROUP BY {', '.join(cols)} HAVING count(*) > 1)"
        )
        return int(count), []
    key = cols[0] if len(cols) == 1 else f"row({', '.join(cols)})"
    count, keys = query.one(
        f"SELECT coalesce(sum(n - 1), 0), list(k)[1:{SAMPLE_ROWS}] FROM ("  # nosec B608
        f"SELECT {key} AS k, count(*) AS n FROM {relation} WHERE {present} "
        f"GROUP BY ALL HAVING count(*) > 1)"
    )
    return int(count), list(keys or [])


def samples(
    rule: Rule,
    query: SourceQuery,
    relation: str,
    plan: RulePlan,
    duplicated_keys: list[Any] | None = None,
) -> list[dict[str, Any]]:
    params: list[Any] = []
    if rule.row_check is not None:
        where = f"NOT coalesce(({rule.row_check}), FALSE)"
    else:
        assert rule.unique_over is not None  # nosec B101
        cols = [quote_identifier(c) for c in rule.unique_over]
        if len(cols) == 1 and not query.engine.portable:  # the keys found while counting
            where = f"list_contains(?, {cols[0]})"
            params = [duplicated_keys or []]
        else:
            listed = ", ".join(cols)
            where = (
                f"({listed}) IN (SELECT {listed} FROM {relation} "  # nosec B608
                f"WHERE {' AND '.join(f'{c} IS NOT NULL' for c in cols)} "
                f"GROUP BY ALL HAVING count(*) > 1)"
            )
    rows = query.rows(f"SELECT * FROM {relation} WHERE {where} LIMIT {SAMPLE_ROWS}", params)  # nosec B608
    return [
        {k: (MASK if k in plan.pii and v is not None else _jsonable(v)) for k, v in row.items()}
        for row in rows
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
