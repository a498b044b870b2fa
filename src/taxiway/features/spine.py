"""Spines: the prediction times a training set (or a materialization) is computed for.

- periodic: t = start + n·every while t <= end, for each entity with a known row in the spine
  source at t;
- event: one row per source row, at its timestamp, carrying the row's columns (so a `column`
  label can be computed on it);
- as-of: one row per entity known at a single time T (materialization and skew checks).

Every spine table has ``__sid`` (unique, in time order), the key columns and ``__t``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb

from taxiway.engines.duckdb import quote_identifier as q
from taxiway.engines.duckdb import quote_literal
from taxiway.engines.sql import EngineError, SqlEngine, as_engine
from taxiway.errors import FeatureError
from taxiway.features.pit import interval
from taxiway.spec.models import ColumnLabel, EventSpine, PeriodicSpine, TaxiwaySpec

__all__ = ["LABEL_COLUMN", "as_of_spine", "build_spine", "spine_entity", "timestamp_literal"]

LABEL_COLUMN = "__label"


def timestamp_literal(moment: date | datetime) -> str:
    """A TIMESTAMP literal in UTC (aware datetimes are converted, naive ones taken as UTC)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return f"TIMESTAMP {quote_literal(moment.isoformat(sep=' '))}"
    return f"TIMESTAMP {quote_literal(moment.isoformat() + ' 00:00:00')}"


def spine_entity(spec: TaxiwaySpec) -> str | None:
    """The entity a spine is keyed by: ``spine.entity``, else the label's."""
    assert spec.spine is not None
    if spec.spine.entity is not None:
        return spec.spine.entity
    label = spec.label
    if label is not None and not isinstance(label, ColumnLabel):
        return label.entity
    return None


def request_fields(spec: TaxiwaySpec) -> list[str]:
    """Inputs the caller sends with each request (``model.request_fields``).

    Offline they are columns of the event spine's source row, so a training row sees exactly
    what the request will carry.
    """
    return list(spec.model.request_fields) if spec.model is not None else []


def build_spine(
    con: duckdb.DuckDBPyConnection | SqlEngine, spec: TaxiwaySpec, source_view: str, target: str
) -> tuple[str, ...]:
    """Create the spine table ``target`` from the spec; return its key columns."""
    engine = as_engine(con)
    spine = spec.spine
    if spine is None:
        raise FeatureError(
            "the spec has no `spine:`: taxiway does not know when predictions are made",
            fix="add `spine: {every: 7d, start: ..., end: ..., source: ...}` or `spine: {source: events}`",
        )
    source = spec.sources[spine.source]
    timestamp = source.timestamp
    assert timestamp is not None  # refused at load otherwise
    entity = spine_entity(spec)
    if isinstance(spine, PeriodicSpine):
        if request_fields(spec):
            raise FeatureError(
                "model.request_fields need an event spine: a periodic spine has no request "
                "row to take them from",
                fix="drop `model.request_fields`, or use `spine: {source: <events>}`",
            )
        if entity is None:
            raise FeatureError(
                "a periodic spine needs an entity",
                fix="add `entity:` to the spine, or a label with an entity",
            )
        keys = spec.entity_keys(entity)
        key_list = ", ".join(q(k) for k in keys)
        present = " AND ".join(f"{q(k)} IS NOT NULL" for k in keys)
        # "every" is added n times to start; range() steps by the interval, end inclusive (on
        # other engines the times are listed: SQLGlot's range() -> sequence() is wrong on Spark)
        times = (
            _listed_times(spine.start, spine.end, spine.every)
            if engine.portable
            else f"""SELECT unnest(range({timestamp_literal(spine.start)},
                                    {timestamp_literal(spine.end)} + INTERVAL 1 MICROSECOND,
                                    {interval(spine.every)})) AS __t"""
        )
        engine.create_table(
            target,
            f"""
            WITH times AS ({times}),
            known AS (
                SELECT {key_list},
                       min(CAST({q(timestamp)} AS TIMESTAMP)) + {interval(source.available_after)}
                           AS __first_known
                FROM {q(source_view)}
                WHERE {q(timestamp)} IS NOT NULL AND {present}
                GROUP BY ALL
            )
            SELECT row_number() OVER (ORDER BY __t, {key_list}) AS __sid, {key_list}, __t
            FROM times JOIN known ON known.__first_known <= times.__t
            """,
        )
        return keys
    assert isinstance(spine, EventSpine)
    available = list(engine.columns(source_view))
    keys = tuple(k for name in spec.entities for k in spec.entity_keys(name) if k in available)
    keys = tuple(dict.fromkeys(keys))
    if entity is not None:
        missing = [k for k in spec.entity_keys(entity) if k not in available]
        if missing:
            raise FeatureError(
                f"the spine source `{spine.source}` has no key column {', '.join(missing)} "
                f"for entity `{entity}`",
            )
    label = spec.label
    label_sql = ""
    if isinstance(label, ColumnLabel):
        label_sql = f", ({label.expr}) AS {LABEL_COLUMN}"
    # rows without the label entity's key could only get a false label: leave them out
    required = (
        "".join(f" AND {q(k)} IS NOT NULL" for k in spec.entity_keys(entity)) if entity else ""
    )
    order = ", ".join(q(c) for c in available)
    requested = [f for f in request_fields(spec) if f not in keys]
    selected = ", ".join(
        [*(q(k) for k in keys), "__t", *(q(f) for f in requested)]
        + ([LABEL_COLUMN] if label_sql else [])
    )
    try:
        engine.create_table(
            target,
            f"""
            SELECT row_number() OVER (ORDER BY __t, {order}) AS __sid, {selected}
            FROM (
                SELECT *, CAST({q(timestamp)} AS TIMESTAMP) AS __t{label_sql}
                FROM {q(source_view)} WHERE {q(timestamp)} IS NOT NULL{required}
            )
            """,
        )
    except (duckdb.Error, EngineError) as error:
        raise FeatureError(
            f"the event spine cannot be built: {str(error).splitlines()[0]}",
            fix="check `label.expr` (SQL on a row of the spine source)"
            if label_sql
            else "check the spine source",
        ) from None
    return keys


def as_of_spine(
    con: duckdb.DuckDBPyConnection | SqlEngine,
    key_sources: list[tuple[str, str | None, str]],
    keys: tuple[str, ...],
    moment: datetime,
    target: str,
    *,
    only_sql: str | None = None,
) -> None:
    """A spine of every entity key known at ``moment`` in any of ``key_sources``.

    ``key_sources`` lists (clean view, timestamp column or None, available_after interval SQL).
    ``only_sql`` (a query returning key columns) restricts the spine to those keys.
    """
    key_list = ", ".join(q(k) for k in keys)
    present = " AND ".join(f"{q(k)} IS NOT NULL" for k in keys)
    at = timestamp_literal(moment)
    parts = []
    for view, timestamp, available_after in key_sources:
        known = (
            f" AND CAST({q(timestamp)} AS TIMESTAMP) + {available_after} <= {at}"
            if timestamp
            else ""
        )
        parts.append(f"SELECT DISTINCT {key_list} FROM {q(view)} WHERE {present}{known}")
    union = " UNION ".join(parts)
    if only_sql is not None:
        union = f"SELECT * FROM ({union}) SEMI JOIN ({only_sql}) AS wanted USING ({key_list})"
    as_engine(con).create_table(
        target,
        f"SELECT row_number() OVER (ORDER BY {key_list}) AS __sid, {key_list}, {at} AS __t "
        f"FROM ({union})",
    )


def _listed_times(start: date | datetime, end: date | datetime, every: timedelta) -> str:
    """The periodic spine's times as a list of literals: start + n·every while <= end."""
    first = _naive(start)
    last = _naive(end)
    times = []
    moment = first
    while moment <= last:
        times.append(f"({timestamp_literal(moment)})")
        moment += every
    if not times:
        return "SELECT NULL::TIMESTAMP AS __t WHERE FALSE"
    return f"SELECT * FROM (VALUES {', '.join(times)}) AS v(__t)"


def _naive(moment: date | datetime) -> datetime:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return datetime(moment.year, moment.month, moment.day)
