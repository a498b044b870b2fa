"""Labels: what happened after each spine time, looking forward on raw timestamps.

For a spine row (k, t): rows r of k with ``t < r.ts <= t + horizon`` (``available_after``
does not apply: the label is judged after the fact). ``any_event``/``no_event`` give 1/0,
``count`` and ``sum`` give 0 when there are none. A row whose ``t + horizon`` is later than the
newest timestamp in the label source is dropped (its label is not known yet).
"""

from __future__ import annotations

from datetime import timedelta

import duckdb

from taxiway.engines.duckdb import quote_identifier as q
from taxiway.engines.sql import EngineError, SqlEngine, as_engine
from taxiway.errors import FeatureError
from taxiway.features.pit import interval, key_types, reach
from taxiway.spec.models import ColumnLabel, EventLabel, SumLabel, TaxiwaySpec

__all__ = ["KNOWN_COLUMN", "compute_label"]

KNOWN_COLUMN = "__label_known"


def compute_label(
    con: duckdb.DuckDBPyConnection | SqlEngine,
    spec: TaxiwaySpec,
    source_view: str,
    spine: str,
    target: str,
) -> None:
    """Create ``target`` (``__sid``, ``__label``, ``__label_known``) for an event or sum label."""
    engine = as_engine(con)
    label = spec.label
    assert isinstance(label, EventLabel | SumLabel)
    source = spec.sources[label.source]
    timestamp = source.timestamp
    assert timestamp is not None
    keys = spec.entity_keys(label.entity)
    types = key_types(engine, spine, keys)
    casts = ", ".join(f"CAST({q(k)} AS {types[k]}) AS {q(k)}" for k in keys)
    present = " AND ".join(f"{q(k)} IS NOT NULL" for k in keys)
    value = f", {q(label.expr)} AS __v" if isinstance(label, SumLabel) else ""
    events = (
        f"SELECT {casts}, CAST({q(timestamp)} AS TIMESTAMP) AS __pos, 1 AS __ev{value}, "
        f"NULL::BIGINT AS __sid FROM {q(source_view)} WHERE {q(timestamp)} IS NOT NULL AND {present}"
        # only the rows some spine row's horizon reaches: (t, t + horizon]
        + reach(engine, spine, timestamp, before=timedelta(0), after=label.horizon)
    )
    # a union by position (every engine has it): the probes fill the event columns with null
    no_value = ", NULL AS __v" if isinstance(label, SumLabel) else ""
    probes = (
        f"SELECT {', '.join(q(k) for k in keys)}, __t AS __pos, NULL AS __ev{no_value}, __sid "
        f"FROM {q(spine)}"
    )
    frame = (
        f"PARTITION BY {', '.join(q(k) for k in keys)} ORDER BY __pos RANGE BETWEEN "
        f"INTERVAL 1 MICROSECOND FOLLOWING AND {interval(label.horizon)} FOLLOWING"
    )
    count = "count(__ev) OVER w"
    if label.kind == "any_event":
        expr = f"CASE WHEN {count} > 0 THEN 1 ELSE 0 END"
    elif label.kind == "no_event":
        expr = f"CASE WHEN {count} > 0 THEN 0 ELSE 1 END"
    elif label.kind == "count":
        expr = count
    else:
        expr = f"CASE WHEN {count} = 0 THEN 0 ELSE CAST(sum(__v) OVER w AS DOUBLE) END"
    newest = (
        f"(SELECT max(CAST({q(timestamp)} AS TIMESTAMP)) FROM {q(source_view)} "
        f"WHERE {q(timestamp)} IS NOT NULL)"
    )
    try:
        engine.create_table(
            target,
            f"""
            SELECT l.__sid, l.__label, s.__t + {interval(label.horizon)} <= {newest} AS {KNOWN_COLUMN}
            FROM (
                SELECT __sid, {expr} AS __label
                FROM (SELECT * FROM ({events}) UNION ALL SELECT * FROM ({probes})) AS u
                WINDOW w AS ({frame})
                QUALIFY __sid IS NOT NULL
            ) AS l JOIN {q(spine)} AS s USING (__sid)
            """,
        )
    except (duckdb.Error, EngineError) as error:
        raise FeatureError(
            f"label `{label.name}` cannot be computed: {str(error).splitlines()[0]}",
            fix=f"check label.source ({label.source}) and its columns",
        ) from None


def label_is_column(spec: TaxiwaySpec) -> bool:
    """Whether the label is an expression on the spine row (computed with the spine)."""
    return isinstance(spec.label, ColumnLabel)
