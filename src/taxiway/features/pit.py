"""Point-in-time feature values for every row of a spine, as set-based DuckDB SQL.

The spine is a table with a unique ``__sid``, the entity key columns under their key names and
``__t`` (the prediction time). For a spine row (k, t) and a source row r of k, r is *known* at
t iff ``r.ts + available_after <= t``. The same functions compute training sets (a spine of
many times) and online vectors (a spine of one time per entity): one definition, no skew.

- aggregate views: known rows with ``r.ts > t - window``; a window frame over the union of
  source rows and spine probes, ordered by time, so no range join explodes on long windows.
- latest views: the known row with the greatest timestamp (ties: newest ``created``, nulls
  last, then the smallest values of the listed columns in their listed order, nulls last),
  null when older than ``t - ttl``. Two statements: an ASOF join on keys and times alone
  gives each spine row its key's newest known timestamp (only keys and times are sorted), then
  that (key, time) is joined back to the source for the values, and ``arg_max`` over a sort
  key in the tie order decides the spine rows that find several rows there. Nothing depends
  on how the data is spread, so no guard is needed.
  A second plan, *bucketed* (only when forced with ``plan="bucketed"``; a view with a
  ``ttl``), finds the newest time with a hash join on key and a ttl-wide time bucket instead:
  a spine row at t reads its key's rows in the buckets of ``t - ttl`` and ``t`` that lie in
  ``[t - ttl, t - available_after]``. Its cost grows with those candidate pairs
  (``candidate_pairs`` counts them exactly; ``latest_plan`` is the guard that once chose
  between the plans), and at 10M x 1M it was no cheaper than the ASOF join plus the guard.
  Both plans give the same rows.
- static views: joined by key.

Only the source rows some spine row can read take part (:func:`reach`): from the earliest
spine time less the longest window (a latest view: its ttl; without one, all history) up to
the latest spine time (a label: plus its horizon). A retrain's window is a year of a source
that holds several: the rest is never sorted or windowed. The bounds are literals read from
the spine, so the engine prunes the rows (and a Parquet source's row groups) at the scan.

One plan, every engine: each query is written once, in DuckDB's dialect, and an engine other
than DuckDB runs it transpiled (:mod:`taxiway.engines.transpile`). Where DuckDB's fastest form
has no Spark equivalent the plan writes a portable one when ``engine.portable`` is set: the
ASOF join becomes a running ``max`` of the source's times over the union of source rows and
spine probes (the aggregate views' shape), and ``arg_max`` over a sort key becomes
``row_number()`` in the same tie order. Both forms give the same rows (tests/engines/).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import duckdb

from taxiway.engines.duckdb import quote_identifier as q
from taxiway.engines.sql import EngineError, SqlEngine, as_engine
from taxiway.errors import FeatureError
from taxiway.features.definitions import FeatureColumn, view_columns
from taxiway.spec.models import AggregateView, LatestView, StaticView, TaxiwaySpec

__all__ = [
    "EVENT_TIME",
    "PAIRS_PER_ROW",
    "LatestPlan",
    "candidate_pairs",
    "compute_view",
    "interval",
    "key_types",
    "latest_plan",
    "reach",
]

EVENT_TIME = "__event_time"

LatestPlan = Literal["auto", "asof", "bucketed"]
"""How a latest view is joined: ``auto`` is ``asof``; ``bucketed`` needs a ``ttl``."""

# latest_plan's threshold. The bucketed join costs a hash-join probe per source row plus one
# max step per candidate pair; the ASOF join sorts keys and times of source + spine rows. At
# 0.65 pairs per row (10M x 1M) the two cost about the same before the guard's own probe.
PAIRS_PER_ROW = 1.0


def interval(delta: timedelta) -> str:
    """A DuckDB interval literal of ``delta`` in microseconds."""
    micros = delta // timedelta(microseconds=1)
    return f"INTERVAL {micros} MICROSECOND"


def reach(
    con: duckdb.DuckDBPyConnection | SqlEngine,
    spine: str,
    timestamp: str,
    *,
    before: timedelta | None,
    after: timedelta = timedelta(0),
) -> str:
    """The condition (`` AND ...``) on a source row's ``timestamp`` column that keeps the rows
    some row of ``spine`` can read: from its earliest time less ``before`` (None: no lower
    bound) to its latest time plus ``after``. The bounds are generous (a row on a bound is
    kept); a spine without times keeps nothing, as no spine row reads anything.

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE s AS SELECT TIMESTAMP '2025-03-01' AS __t")
    >>> for part in reach(con, "s", "ts", before=timedelta(days=30)).split(" AND ")[1:]:
    ...     print(part)
    CAST("ts" AS TIMESTAMP) >= CAST('2025-01-30 00:00:00' AS TIMESTAMP)
    CAST("ts" AS TIMESTAMP) <= CAST('2025-03-01 00:00:00' AS TIMESTAMP)
    """
    # the bounds as the engine's own text of its times (no time zone crosses to Python)
    row = as_engine(con).fetch_one(
        f"SELECT CAST(min(__t) - {interval(before or timedelta(0))} AS VARCHAR), "
        f"CAST(max(__t) + {interval(after)} AS VARCHAR) FROM {q(spine)}"
    )
    first, last = row if row is not None else (None, None)
    if first is None or last is None:
        return " AND FALSE"
    ts = f"CAST({q(timestamp)} AS TIMESTAMP)"
    low = "" if before is None else f" AND {ts} >= CAST('{first}' AS TIMESTAMP)"
    return f"{low} AND {ts} <= CAST('{last}' AS TIMESTAMP)"


def key_types(
    con: duckdb.DuckDBPyConnection | SqlEngine, table: str, keys: tuple[str, ...]
) -> dict[str, str]:
    """The engine types of ``keys`` in ``table`` (so source keys can be cast to match)."""
    described = as_engine(con).columns(table)
    missing = [k for k in keys if k not in described]
    if missing:
        raise FeatureError(
            f"the spine has no key column {', '.join(missing)}",
            fix="use views of the spine's entity, or an event spine whose source has these keys",
        )
    return {k: described[k] for k in keys}


def compute_view(
    con: duckdb.DuckDBPyConnection | SqlEngine,
    spec: TaxiwaySpec,
    view_name: str,
    source_view: str,
    spine: str,
    target: str,
    *,
    plan: LatestPlan = "auto",
) -> list[FeatureColumn]:
    """Create table ``target`` (``__sid``, the view's features, ``__event_time``) for ``spine``.

    ``source_view`` holds the source's clean rows. ``plan`` only matters for a latest view with
    a ``ttl`` (see the module's docstring); the result is the same whichever is used.
    """
    engine = as_engine(con)
    view = spec.features[view_name]
    keys = spec.entity_keys(view.entity)
    types = key_types(engine, spine, keys)
    source = spec.sources[view.source]
    columns = view_columns(view_name, view)
    chosen = f"{target}__chosen"  # a latest view's join result, before its rare ties are decided
    try:
        if isinstance(view, AggregateView):
            assert source.timestamp is not None
            longest = max((c.window for c in columns if c.window is not None), default=None)
            sql = _aggregate_sql(
                view,
                columns,
                keys,
                types,
                source_view,
                spine,
                source.timestamp,
                source.available_after,
                reach(engine, spine, source.timestamp, before=longest or timedelta(0)),
            )
        elif isinstance(view, LatestView) and source.timestamp is not None:
            # two statements: each spine row's newest known time (the bucketed plan: among the
            # candidates of two ttl buckets), then that time's row
            bucketed = view.ttl is not None and plan == "bucketed"
            if bucketed and engine.portable:
                raise FeatureError(
                    "the bucketed plan of latest views runs on DuckDB only",
                    fix="leave the plan to `auto` on this engine",
                )
            if bucketed:
                join, sql = _bucketed_sql(
                    view,
                    view_name,
                    keys,
                    types,
                    source_view,
                    spine,
                    source.timestamp,
                    source.available_after,
                    source.created,
                    chosen,
                    portable=engine.portable,
                )
            else:
                join, sql = _latest_sql(
                    view,
                    view_name,
                    keys,
                    types,
                    source_view,
                    spine,
                    source.timestamp,
                    source.available_after,
                    source.created,
                    chosen,
                    portable=engine.portable,
                    within=reach(engine, spine, source.timestamp, before=view.ttl),
                )
            engine.create_table(chosen, join)
        else:
            assert isinstance(view, LatestView | StaticView)
            wanted = view.latest if isinstance(view, LatestView) else view.static
            sql = _static_sql(wanted, view_name, keys, types, source_view, spine)
        engine.create_table(target, sql)
        engine.drop_table(chosen)
    except (duckdb.Error, EngineError) as error:
        raise FeatureError(
            f"feature view `{view_name}` cannot be computed: {str(error).splitlines()[0]}",
            fix=f"check the columns that features.{view_name} names against source `{view.source}`",
        ) from None
    return columns


def latest_plan(
    con: duckdb.DuckDBPyConnection,
    spec: TaxiwaySpec,
    view_name: str,
    source_view: str,
    spine: str,
) -> Literal["asof", "bucketed"]:
    """The plan a guard would pick for latest view ``view_name`` over ``spine`` (``auto`` no
    longer asks: the ASOF plan plus no guard cost less than the guard plus the bucketed plan).

    ``bucketed`` when the candidate pairs (spine rows x source rows of the same key in the two
    ttl-wide buckets each spine row reads) are at most ``PAIRS_PER_ROW`` x (source rows + spine
    rows), else ``asof``; a view without ``ttl`` or timestamp is always ``asof``.
    """
    view = spec.features[view_name]
    source = spec.sources[view.source]
    if not isinstance(view, LatestView) or view.ttl is None or source.timestamp is None:
        return "asof"
    source_rows, pairs = candidate_pairs(con, spec, view_name, source_view, spine)
    spine_rows = con.execute(f"SELECT count(*) FROM {q(spine)}").fetchone()
    assert spine_rows is not None
    limit = PAIRS_PER_ROW * (source_rows + int(spine_rows[0]))
    return "bucketed" if pairs <= limit else "asof"


def candidate_pairs(
    con: duckdb.DuckDBPyConnection,
    spec: TaxiwaySpec,
    view_name: str,
    source_view: str,
    spine: str,
) -> tuple[int, int]:
    """(source rows, candidate pairs) of the bucketed plan for latest view ``view_name``.

    A candidate pair is a spine row and a source row of the same key in one of the two
    ttl-wide buckets the spine row reads. The spine's rows are counted per (key, bucket), and
    each source row looks its (key, bucket) up in that small table: one hash-join probe per
    source row, reading only the key and timestamp (no grouping of the source).
    """
    view = spec.features[view_name]
    source = spec.sources[view.source]
    assert isinstance(view, LatestView)
    assert view.ttl is not None
    assert source.timestamp is not None
    keys = spec.entity_keys(view.entity)
    types = key_types(con, spine, keys)
    width = view.ttl // timedelta(microseconds=1)
    ts = f"CAST({q(source.timestamp)} AS TIMESTAMP)"
    key_list = ", ".join(q(k) for k in keys)
    on = " AND ".join(f"s.{q(k)} = e.{q(k)}" for k in keys)
    counted = con.execute(
        f"WITH s AS (SELECT {key_list}, __b, count(*) AS n FROM (SELECT {key_list}, "
        f"unnest([{_bucket('__t', width)} - 1, {_bucket('__t', width)}]) AS __b "
        f"FROM {q(spine)} WHERE __t IS NOT NULL AND {_keys_present(keys)}) GROUP BY ALL) "
        f"SELECT count(*), coalesce(sum(s.n), 0) FROM (SELECT {_cast_keys(keys, types)}, "
        f"{_bucket(ts, width)} AS __b FROM {q(source_view)} "
        f"WHERE {q(source.timestamp)} IS NOT NULL AND {_keys_present(keys)}) AS e "
        f"LEFT JOIN s ON {on} AND s.__b = e.__b"
    ).fetchone()
    assert counted is not None
    return int(counted[0]), int(counted[1])


def _bucket(time: str, width: int) -> str:
    # floor(epoch_us / width): DuckDB's // truncates toward zero, which would make the bucket
    # around 1970 twice as wide
    us = f"epoch_us({time})"
    return f"({us} // {width} - CASE WHEN {us} % {width} < 0 THEN 1 ELSE 0 END)"


def _bucketed_sql(
    view: LatestView,
    view_name: str,
    keys: tuple[str, ...],
    types: dict[str, str],
    source_view: str,
    spine: str,
    timestamp: str,
    available_after: timedelta,
    created: str | None,
    chosen_table: str,
    *,
    portable: bool = False,
) -> tuple[str, str]:
    """A latest view with a ttl by (key, ttl-wide bucket): the join (to be stored as
    ``chosen_table``) and the query that fetches the chosen rows.

    The join finds each spine row's newest candidate timestamp with a plain ``max`` over the
    key and time alone (a fixed-width aggregate: carrying the values and a sort key through
    every candidate pair cost about twice as much). The second query joins those (key, time)
    back to the source; where several rows share them, it picks by the documented tie order
    (newest ``created``, nulls lowest, then the smallest values, nulls last) with ``arg_max``.
    """
    assert view.ttl is not None
    width = view.ttl // timedelta(microseconds=1)
    ts = f"CAST({q(timestamp)} AS TIMESTAMP)"
    key_list = ", ".join(q(k) for k in keys)
    rows = f"FROM {q(source_view)} WHERE {q(timestamp)} IS NOT NULL AND {_keys_present(keys)}"
    # [t - ttl, t - available_after] is at most one bucket wide: the buckets of t - ttl and t
    spine_rows = (
        f"SELECT __sid, {key_list}, __t, unnest([__b - 1, __b]) AS __b FROM ("
        f"SELECT __sid, {key_list}, __t, {_bucket('__t', width)} AS __b FROM {q(spine)} "
        f"WHERE __t IS NOT NULL AND {_keys_present(keys)})"
    )
    times = f"SELECT {_cast_keys(keys, types)}, {ts} AS __ts, {_bucket(ts, width)} AS __b {rows}"
    on = " AND ".join(f"s.{q(k)} = e.{q(k)}" for k in keys)
    join = (
        f"SELECT s.__sid, {', '.join(f's.{q(k)}' for k in keys)}, max(e.__ts) AS __ts "
        f"FROM ({spine_rows}) AS s JOIN ({times}) AS e "
        f"ON {on} AND s.__b = e.__b AND e.__ts >= s.__t - {interval(view.ttl)} "
        f"AND e.__ts <= s.__t - {interval(available_after)} "
        f"GROUP BY s.__sid, {', '.join(f's.{q(k)}' for k in keys)}"
    )
    return join, _fetch_sql(
        view, view_name, keys, types, source_view, spine, timestamp, created, chosen_table
    )


def _fetch_sql(
    view: LatestView,
    view_name: str,
    keys: tuple[str, ...],
    types: dict[str, str],
    source_view: str,
    spine: str,
    timestamp: str,
    created: str | None,
    chosen_table: str,
    *,
    portable: bool = False,
    within: str = "",
) -> str:
    """The values of each spine row's chosen (key, time) in ``chosen_table`` (``__sid``, the
    keys, ``__ts``): joined back to the source; where several rows share that key and time,
    ``arg_max`` picks by the tie order (newest ``created``, nulls lowest, then the smallest
    values, nulls last). ``portable``: ``row_number()`` in that order instead. ``within``: the
    condition that keeps the source rows the spine reaches (:func:`reach`)."""
    wanted = list(view.latest)
    values = [f"__v{i}" for i in range(len(wanted))]
    ts = f"CAST({q(timestamp)} AS TIMESTAMP)"
    key_list = ", ".join(q(k) for k in keys)
    rows = (
        f"FROM {q(source_view)} WHERE {q(timestamp)} IS NOT NULL AND {_keys_present(keys)}{within}"
    )
    picked = ", ".join(f"{q(c)} AS {v}" for c, v in zip(wanted, values, strict=True))
    creation = f", {q(created)} AS __c" if created else ""
    source_rows = f"SELECT {_cast_keys(keys, types)}, {ts} AS __ts{creation}, {picked} {rows}"
    found = " AND ".join(f"c.{q(k)} = e.{q(k)}" for k in keys)
    outputs = ", ".join(
        f"m.{v} AS {q(f'{view_name}__{c}')}" for c, v in zip(wanted, values, strict=True)
    )
    if portable:
        ranked = (["e.__c DESC NULLS LAST"] if created else []) + [
            f"e.{v} ASC NULLS LAST" for v in values
        ]
        best = (
            f"SELECT c.__sid, e.__ts, {', '.join(f'e.{v}' for v in values)} "
            f"FROM {q(chosen_table)} AS c JOIN ({source_rows}) AS e "
            f"ON {found} AND c.__ts = e.__ts "
            f"QUALIFY row_number() OVER (PARTITION BY c.__sid ORDER BY {', '.join(ranked)}) = 1"
        )
        return (
            f"SELECT a.__sid, {outputs}, m.__ts AS {EVENT_TIME} FROM {q(spine)} AS a "
            f"LEFT JOIN ({best}) AS m ON a.__sid = m.__sid"
        )
    payload = ", ".join(["__ts", *values])
    # the greatest sort key wins: newest created (null lowest), then the smallest values
    # (DESC NULLS FIRST puts nulls lowest and the smallest value highest)
    order = ["__c, 'ASC NULLS FIRST'"] if created else []
    order += [f"{v}, 'DESC NULLS FIRST'" for v in values]
    row = ", ".join(f"'{p}': {p}" for p in ["__ts", *values])
    # most spine rows find one source row at their (key, time) and take it as is; only those
    # that find several (rows sharing key, time and maybe `created`) go through arg_max
    fetched = (
        f"WITH __j AS MATERIALIZED (SELECT c.__sid, e.* EXCLUDE ({key_list}) "
        f"FROM {q(chosen_table)} AS c JOIN ({source_rows}) AS e "
        f"ON {found} AND c.__ts = e.__ts), "
        f"__tied AS (SELECT __sid FROM __j GROUP BY __sid HAVING count(*) > 1), "
        f"__best AS (SELECT __sid, {payload} FROM __j ANTI JOIN __tied USING (__sid) "
        f"UNION ALL SELECT __sid, unnest(__r) FROM (SELECT __sid, "
        f"arg_max({{{row}}}, create_sort_key({', '.join(order)})) AS __r "
        f"FROM __j SEMI JOIN __tied USING (__sid) GROUP BY __sid)) "
    )
    return (
        f"{fetched}SELECT a.__sid, {outputs}, m.__ts AS {EVENT_TIME} FROM {q(spine)} AS a "
        f"LEFT JOIN __best AS m ON a.__sid = m.__sid"
    )


def _cast_keys(keys: tuple[str, ...], types: dict[str, str]) -> str:
    return ", ".join(f"CAST({q(k)} AS {types[k]}) AS {q(k)}" for k in keys)


def _keys_present(keys: tuple[str, ...], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return " AND ".join(f"{prefix}{q(k)} IS NOT NULL" for k in keys)


def _aggregate_sql(
    view: AggregateView,
    columns: list[FeatureColumn],
    keys: tuple[str, ...],
    types: dict[str, str],
    source_view: str,
    spine: str,
    timestamp: str | None,
    available_after: timedelta,
    within: str = "",
) -> str:
    """``within``: the condition that keeps the source rows the spine reaches (:func:`reach`)."""
    assert timestamp is not None
    inputs = sorted({a.column for a in view.aggregate.values() if a.column is not None})
    alias = {column: f"__c{i}" for i, column in enumerate(inputs)}
    input_cols = "".join(f", {q(c)} AS {alias[c]}" for c in inputs)
    events = (
        f"SELECT {_cast_keys(keys, types)}, CAST({q(timestamp)} AS TIMESTAMP) AS __pos, "
        f"1 AS __ev{input_cols}, NULL::BIGINT AS __sid FROM {q(source_view)} "
        f"WHERE {q(timestamp)} IS NOT NULL AND {_keys_present(keys)}{within}"
    )
    # a spine row at t probes at t - available_after: the newest event time it may see (the
    # union is by position, every engine has that: the probes fill the event columns with null)
    no_inputs = "".join(f", NULL AS {alias[c]}" for c in inputs)
    probes = (
        f"SELECT {', '.join(q(k) for k in keys)}, __t - {interval(available_after)} AS __pos, "
        f"NULL AS __ev{no_inputs}, __sid FROM {q(spine)} WHERE {_keys_present(keys)}"
    )
    windows: dict[timedelta, str] = {}
    outputs: list[str] = []
    for column in columns:
        assert column.window is not None
        assert column.function is not None
        span = column.window - available_after  # how far back from the probe the window reaches
        if span <= timedelta(0):  # the window closes before anything in it is known
            empty = "0" if column.function in ("count", "count_distinct", "sum") else "NULL"
            outputs.append(f"{empty} AS {q(column.name)}")
            continue
        name = windows.setdefault(column.window, f"w{len(windows)}")
        outputs.append(f"{_window_expr(column, alias, name)} AS {q(column.name)}")
    definitions = ", ".join(
        f"w{i} AS (PARTITION BY {', '.join(q(k) for k in keys)} ORDER BY __pos "
        f"RANGE BETWEEN {interval(window - available_after - timedelta(microseconds=1))} "
        f"PRECEDING AND CURRENT ROW)"
        for i, window in enumerate(windows)
    )
    window_clause = f" WINDOW {definitions}" if definitions else ""
    return (
        f"SELECT __sid, {', '.join(outputs)}, NULL::TIMESTAMP AS {EVENT_TIME} FROM ("
        f"SELECT * FROM ({events}) UNION ALL SELECT * FROM ({probes})"
        f") AS u{_qualify_probes(window_clause)}"
    )


def _qualify_probes(window_clause: str) -> str:
    # windows are computed over events and probes together; only the probes are kept
    return (
        f"{window_clause} QUALIFY __sid IS NOT NULL"
        if window_clause
        else " WHERE __sid IS NOT NULL"
    )


def _window_expr(column: FeatureColumn, alias: dict[str, str], window: str) -> str:
    function = column.function
    value = alias[column.column] if column.column is not None else "__ev"
    if function == "count":
        return f"count({value}) OVER {window}"
    if function == "count_distinct":
        return f"count(DISTINCT {value}) OVER {window}"
    if function == "sum":
        return (
            f"CASE WHEN count(__ev) OVER {window} = 0 THEN 0 "
            f"ELSE CAST(sum({value}) OVER {window} AS DOUBLE) END"
        )
    if function == "avg":
        return f"CAST(avg({value}) OVER {window} AS DOUBLE)"
    if function == "stddev":
        return f"CAST(stddev_samp({value}) OVER {window} AS DOUBLE)"
    return f"{function}({value}) OVER {window}"  # min, max keep the column's type


def _latest_sql(
    view: LatestView,
    view_name: str,
    keys: tuple[str, ...],
    types: dict[str, str],
    source_view: str,
    spine: str,
    timestamp: str,
    available_after: timedelta,
    created: str | None,
    chosen_table: str,
    *,
    portable: bool = False,
    within: str = "",
) -> tuple[str, str]:
    """A latest view as an ASOF join on keys and times alone: the join (to be stored as
    ``chosen_table``) and the query that fetches the chosen rows (``_fetch_sql``).

    The ASOF join gives each spine row its key's greatest known timestamp (``ts <= t -
    available_after``), dropped when older than ``t - ttl``; it sorts only keys and times.
    Which row at that timestamp wins (``created``, then the values) is decided when the rows
    are fetched. (Putting ``created`` and the values in the ASOF key instead makes the key a
    wide struct: the join then cost more than the whole of this plan.)

    ``portable`` (engines without ASOF joins): the same newest known time as a running ``max``
    over source rows and spine probes in time order, the aggregate views' shape; a source row
    at the probe's own time is its peer in the ``RANGE`` frame, so it counts as known.

    ``within``: the condition that keeps the source rows the spine reaches (:func:`reach`).
    """
    ts = f"CAST({q(timestamp)} AS TIMESTAMP)"
    key_list = ", ".join(q(k) for k in keys)
    if portable:
        fresh = f" AND __ts >= __t - {interval(view.ttl)}" if view.ttl is not None else ""
        union = (
            f"SELECT {_cast_keys(keys, types)}, {ts} AS __pos, {ts} AS __ts, "
            f"NULL::BIGINT AS __sid, NULL::TIMESTAMP AS __t FROM {q(source_view)} "
            f"WHERE {q(timestamp)} IS NOT NULL AND {_keys_present(keys)}{within} UNION ALL "
            f"SELECT {key_list}, __t - {interval(available_after)} AS __pos, NULL AS __ts, "
            f"__sid, __t FROM {q(spine)} WHERE __t IS NOT NULL AND {_keys_present(keys)}"
        )
        newest = (
            f"SELECT __sid, {key_list}, __t, max(__ts) OVER (PARTITION BY {key_list} "
            f"ORDER BY __pos RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __ts "
            f"FROM ({union}) AS u"
        )
        join = (
            f"SELECT __sid, {key_list}, __ts FROM ({newest}) AS n "
            f"WHERE __sid IS NOT NULL AND __ts IS NOT NULL{fresh}"
        )
        return join, _fetch_sql(
            view,
            view_name,
            keys,
            types,
            source_view,
            spine,
            timestamp,
            created,
            chosen_table,
            portable=True,
            within=within,
        )
    fresh = f" WHERE e.__ts >= s.__t - {interval(view.ttl)}" if view.ttl is not None else ""
    join = (
        f"SELECT s.__sid, {', '.join(f's.{q(k)}' for k in keys)}, e.__ts "
        f"FROM (SELECT __sid, {key_list}, __t, __t - {interval(available_after)} AS __p "
        f"FROM {q(spine)} WHERE __t IS NOT NULL AND {_keys_present(keys)}) AS s "
        f"ASOF JOIN (SELECT {_cast_keys(keys, types)}, {ts} AS __ts FROM {q(source_view)} "
        f"WHERE {q(timestamp)} IS NOT NULL AND {_keys_present(keys)}{within}) AS e "
        f"ON {' AND '.join(f's.{q(k)} = e.{q(k)}' for k in keys)} AND s.__p >= e.__ts{fresh}"
    )
    return join, _fetch_sql(
        view,
        view_name,
        keys,
        types,
        source_view,
        spine,
        timestamp,
        created,
        chosen_table,
        within=within,
    )


def _static_sql(
    wanted: list[str],
    view_name: str,
    keys: tuple[str, ...],
    types: dict[str, str],
    source_view: str,
    spine: str,
) -> str:
    order = ", ".join(q(c) for c in wanted)
    events = (
        f"SELECT {_cast_keys(keys, types)}, {', '.join(q(c) for c in wanted)} "
        f"FROM {q(source_view)} WHERE {_keys_present(keys)} "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(q(k) for k in keys)} "
        f"ORDER BY {order}) = 1"
    )
    join = " AND ".join(f"s.{q(k)} = e.{q(k)}" for k in keys)
    values = ", ".join(f"e.{q(c)} AS {q(f'{view_name}__{c}')}" for c in wanted)
    return (
        f"SELECT s.__sid, {values}, NULL::TIMESTAMP AS {EVENT_TIME} FROM {q(spine)} AS s "
        f"LEFT JOIN ({events}) AS e ON {join}"
    )
