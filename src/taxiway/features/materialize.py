"""`taxiway features materialize`: every entity's feature vector as of T, into the online store.

The values come from the same SQL as training sets (``taxiway.features.pit``) over a spine of
one row per entity at T: the offline and online values cannot disagree by construction.

Past the data: when T is later than the newest source row is known (``ts + available_after``)
by more than a view's longest window (aggregates) or its ``ttl`` (latest views), every value of
that view is empty (counts 0, nulls): most often historical data materialized as of now, the
default. The report then carries a warning per such view naming ``--as-of``
(:attr:`MaterializeReport.warnings`); the values are written all the same.

``engine: spark`` (or ``engine="spark"``): the contracts, the spine and the views run on Spark
(:mod:`taxiway.data.stage_spark`, the same plan transpiled). A Redis store is written by
Spark's executors, each partition its own keys (:mod:`taxiway.features.online.redis_spark`);
a SQLite store, a file on the driver, by this process from Spark's result read back in
batches (``SqlEngine.batches``). Tiled views are refused there.

Incremental: for each view the store remembers the source fingerprint and the T it was
materialized for. When the data has not changed since, only the entities that have a row
entering or leaving a window (or becoming known) between the two times are recomputed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from taxiway.data.contracts.validate import new_run_id
from taxiway.data.stage import StagedSource, stage_sources
from taxiway.data.stage_spark import open_spark_engine, stage_sources_on_spark
from taxiway.engines.duckdb import connect
from taxiway.engines.duckdb import quote_identifier as q
from taxiway.engines.sql import DuckDBEngine, Engine, SqlEngine, as_engine
from taxiway.errors import FeatureError
from taxiway.features.definitions import view_columns
from taxiway.features.online.base import OnlineStore, ViewValues
from taxiway.features.online.rows import encode_key, plain_value, view_rows
from taxiway.features.pit import EVENT_TIME, compute_view, interval
from taxiway.features.spine import as_of_spine, timestamp_literal
from taxiway.features.tiles import TiledView
from taxiway.features.tiles_compact import rebuild_view
from taxiway.spec.durations import format_duration
from taxiway.spec.models import AggregateView, LatestView, TaxiwaySpec
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.engines.spark import SparkEngine
    from taxiway.features.online.redis import RedisStore

__all__ = [
    "MaterializeReport",
    "encode_key",
    "materialize",
    "materialized_as_of",
    "past_the_data",
    "plain_value",
]

Progress = Callable[[str, int, int | None], None]
STATE_FILE = "materialized.json"
BATCH_ROWS = 20_000


@dataclass
class MaterializeReport:
    """What one materialization wrote."""

    as_of: datetime
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0
    # keys of a SQLite store in the layout of earlier versions that this run migrated
    migrated_keys: int = 0
    warnings: list[str] = field(default_factory=list)
    """One line per view whose every value is empty because T is past the data (see the
    module docstring), naming ``--as-of``."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "as_of": self.as_of.isoformat(),
            "views": self.views,
            "duration_s": round(self.duration_s, 3),
            "migrated_keys": self.migrated_keys,
            "warnings": self.warnings,
        }


def materialize(
    project: Project,
    store: OnlineStore,
    *,
    as_of: datetime | None = None,
    full: bool = False,
    progress: Progress | None = None,
    engine: Engine | None = None,
    master: str | None = None,
    say: Callable[[str], None] | None = None,
) -> MaterializeReport:
    """Write every view's values as of ``as_of`` (default now) to ``store``.

    ``engine`` and ``master`` override the spec's ``engine:`` and ``spark.master``; ``say``
    hears Spark's stages done while it computes.
    """
    spec = project.spec
    moment = (as_of or datetime.now(UTC)).astimezone(UTC)
    started = time.perf_counter()
    report = MaterializeReport(as_of=moment)
    state_path = project.state_dir / STATE_FILE
    state = _load_state(state_path)
    run_id = new_run_id()
    temp = project.state_dir / "tmp" / run_id
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp)
    runner: SqlEngine = DuckDBEngine(con)
    try:
        sources = sorted(
            {view.source for view in spec.features.values()}, key=list(spec.sources).index
        )
        if (engine or spec.engine) == "spark":
            _refuse_tiles_on_spark(spec)
            spark = open_spark_engine(project, temp, master, say)
            runner = spark
            staged = stage_sources_on_spark(
                project, spark, con, sources, run_id=run_id, as_of=moment, keep_quarantine=False
            )
        else:
            staged = stage_sources(
                project, con, sources, run_id=run_id, as_of=moment, keep_quarantine=False
            )
        report.warnings = past_the_data(runner, spec, staged, moment, defaulted=as_of is None)
        for entity in dict.fromkeys(view.entity for view in spec.features.values()):
            views = [name for name, view in spec.features.items() if view.entity == entity]
            _materialize_entity(
                runner, spec, store, entity, views, staged, state, moment, full, report, progress
            )
    finally:
        runner.close()
        con.close()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    # a store's first write migrates an earlier layout (and logs it): SQLite and Redis count it
    report.migrated_keys = int(getattr(store, "migrated_keys", 0))
    report.duration_s = time.perf_counter() - started
    return report


def _refuse_tiles_on_spark(spec: TaxiwaySpec) -> None:
    tiled = [n for n, v in spec.features.items() if isinstance(v, AggregateView) and v.tiles]
    if tiled:
        raise FeatureError(
            f"the tiled views ({', '.join(tiled)}) are materialized by DuckDB only; "
            "this spec asks for Spark",
            fix="materialize with `--engine duckdb`, or remove `tiles:` from those views",
        )


def _materialize_entity(
    con: SqlEngine,
    spec: TaxiwaySpec,
    store: OnlineStore,
    entity: str,
    views: list[str],
    staged: dict[str, StagedSource],
    state: dict[str, dict[str, str]],
    moment: datetime,
    full: bool,
    report: MaterializeReport,
    progress: Progress | None,
) -> None:
    """Every view of ``entity`` for every key known at ``moment`` in any of its views' sources
    (a customer with a profile but no orders has order counts of 0, as in a training set)."""
    keys = spec.entity_keys(entity)
    key_list = ", ".join(q(k) for k in keys)
    key_sources = [
        (
            staged[spec.features[v].source].view,
            spec.sources[spec.features[v].source].timestamp,
            interval(spec.sources[spec.features[v].source].available_after),
        )
        for v in views
    ]
    entity_spine = f"__entity_{entity}"
    as_of_spine(con, key_sources, keys, moment, entity_spine)
    previous = [state.get(v) for v in views]
    # incremental only when every view of the entity was materialized before from the same data
    same_data = all(
        p is not None
        and p.get("fingerprint") == staged[spec.features[v].source].fingerprint
        and p.get("definition") == view_hash(spec, v)
        for v, p in zip(views, previous, strict=True)
    )
    before = min((datetime.fromisoformat(p["as_of"]) for p in previous if p), default=None)
    incremental = not full and same_data and before is not None and before <= moment
    if incremental and before is not None:
        as_of_spine(con, key_sources, keys, before, "__entity_before")
    for view_name in views:
        view = spec.features[view_name]
        source = staged[view.source]
        spine = f"__spine_{view_name}"
        if incremental and before is not None:
            changed = _changed_keys_sql(spec, view_name, source, before, moment)
            newly_known = (
                f"SELECT {key_list} FROM {q(entity_spine)} "  # nosec B608
                f"EXCEPT SELECT {key_list} FROM __entity_before"
            )
            con.create_table(
                spine,
                f"SELECT * FROM {q(entity_spine)} "  # nosec B608
                f"SEMI JOIN (({changed}) UNION ({newly_known})) AS wanted USING ({key_list})",
            )
        else:
            con.create_table(spine, f"SELECT * FROM {q(entity_spine)}")  # nosec B608
        compute_view(con, spec, view_name, source.view, spine, f"__f_{view_name}")
        report.views[view_name] = {
            **_write_view(con, spec, store, entity, view_name, keys, spine, moment, progress),
            "incremental": incremental,
            "fingerprint": source.fingerprint,
        }
        state[view_name] = {
            "fingerprint": source.fingerprint,
            "definition": view_hash(spec, view_name),
            "as_of": moment.isoformat(),
        }
        if isinstance(view, AggregateView) and view.tiles is not None:
            # tiles do not depend on T: rebuilt only when the data or the definition changed
            before_state = previous[views.index(view_name)] or {}
            tiles_kept = incremental and before_state.get("tiled") == "yes"
            if not tiles_kept:
                assert isinstance(con, DuckDBEngine)  # nosec B101: refused on Spark above
                report.views[view_name]["tiles"] = rebuild_view(
                    con.con, TiledView.of(spec, view_name), store, source.view
                )
            state[view_name]["tiled"] = "yes"


def past_the_data(
    con: duckdb.DuckDBPyConnection | SqlEngine,
    spec: TaxiwaySpec,
    staged: dict[str, StagedSource],
    moment: datetime,
    *,
    defaulted: bool = False,
) -> list[str]:
    """A warning for each view that holds only empty values at ``moment`` because its
    source's newest row was known longer before it than the view's longest window or ttl.

    Views that never go empty with time (static, latest without ``ttl``) and sources without
    a timestamp or without rows are not judged. ``defaulted`` says ``moment`` was the default
    (now), which the warning then says.
    """
    newest: dict[str, datetime | None] = {}
    warnings: list[str] = []
    for name, view in spec.features.items():
        if isinstance(view, AggregateView):
            horizon, what = max(view.windows), "longest window"
        elif isinstance(view, LatestView) and view.ttl is not None:
            horizon, what = view.ttl, "ttl"
        else:
            continue
        declared = spec.sources[view.source]
        if declared.timestamp is None or view.source not in staged:
            continue
        if view.source not in newest:
            ts = f"CAST({q(declared.timestamp)} AS TIMESTAMP)"
            row = as_engine(con).fetch_one(
                f"SELECT max({ts} + {interval(declared.available_after)}) "  # nosec B608
                f"FROM {q(staged[view.source].view)}",
            )
            known = row[0] if row else None
            newest[view.source] = known.replace(tzinfo=UTC) if isinstance(known, datetime) else None
        known = newest[view.source]
        if known is None or moment - known <= horizon:
            continue
        empty = "counts 0, other aggregates null" if isinstance(view, AggregateView) else "null"
        warnings.append(
            f"{name}: every value is empty ({empty}): the newest `{view.source}` row is known "
            f"at {known.isoformat()}, {format_duration(_whole_days(moment - known))} before "
            f"the as-of {moment.isoformat()}{' (now, the default)' if defaulted else ''}, "
            f"longer than the view's {what} ({format_duration(horizon)}). For historical "
            f"data pass --as-of a time within it, e.g. --as-of {known.date().isoformat()}"
        )
    return warnings


def _whole_days(delta: timedelta) -> timedelta:
    """``delta`` to the day, past a day (a gap of months is not read to the second)."""
    return timedelta(days=delta.days) if delta >= timedelta(days=1) else delta


def materialized_as_of(project: Project) -> dict[str, datetime]:
    """When each view was last materialized (views never materialized are absent)."""
    state = _load_state(project.state_dir / STATE_FILE)
    out = {}
    for view, entry in state.items():
        if isinstance(entry, dict) and entry.get("as_of"):
            out[view] = datetime.fromisoformat(entry["as_of"])
    return out


def view_hash(spec: TaxiwaySpec, view_name: str) -> str:
    """A hash of one view's definition and its source's timing: a change means recompute all."""
    view = spec.features[view_name]
    source = spec.sources[view.source]
    payload = json.dumps(
        [
            view.model_dump(mode="json", exclude={"description"}),
            spec.entity_keys(view.entity),
            source.timestamp,
            source.available_after.total_seconds(),
            source.created,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _load_state(path: Path) -> dict[str, dict[str, str]]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _changed_keys_sql(
    spec: TaxiwaySpec, view_name: str, source: StagedSource, before: datetime, moment: datetime
) -> str:
    """SQL listing the keys of ``view_name`` whose values may differ between ``before`` and
    ``moment`` when the data itself has not changed: a row became known, or left a window."""
    view = spec.features[view_name]
    declared = spec.sources[view.source]
    keys = ", ".join(q(k) for k in spec.entity_keys(view.entity))
    if declared.timestamp is None:
        return f"SELECT DISTINCT {keys} FROM {q(source.view)} WHERE FALSE"  # nosec B608
    ts = f"CAST({q(declared.timestamp)} AS TIMESTAMP)"
    lo, hi = timestamp_literal(before), timestamp_literal(moment)
    moments = [f"{ts} + {interval(declared.available_after)}"]
    if isinstance(view, AggregateView):  # ... or left a window
        moments += [f"{ts} + {interval(window)}" for window in view.windows]
    changed = " OR ".join(f"({m} > {lo} AND {m} <= {hi})" for m in moments)
    if isinstance(view, LatestView) and view.ttl is not None:
        # ... or outlived its ttl: present while t <= ts + ttl, null after
        expiry = f"{ts} + {interval(view.ttl)}"
        changed += f" OR ({expiry} >= {lo} AND {expiry} < {hi})"
    return f"SELECT DISTINCT {keys} FROM {q(source.view)} WHERE {changed}"  # nosec B608


def _values_sql(
    spec: TaxiwaySpec, view_name: str, keys: tuple[str, ...], spine: str
) -> tuple[str, list[str]]:
    """The query of one view's values at the spine (the entity's keys, the view's features,
    the event time) and the features' names."""
    names = [c.name for c in view_columns(view_name, spec.features[view_name])]
    sql = (
        f"SELECT {', '.join(f's.{q(k)}' for k in keys)}, "  # nosec B608
        f"{', '.join(f'f.{q(n)}' for n in names)}, f.{EVENT_TIME} "
        f"FROM {q(spine)} AS s JOIN {q(f'__f_{view_name}')} AS f USING (__sid)"
    )
    return sql, names


def _write_view(
    con: SqlEngine,
    spec: TaxiwaySpec,
    store: OnlineStore,
    entity: str,
    view_name: str,
    keys: tuple[str, ...],
    spine: str,
    moment: datetime,
    progress: Progress | None,
) -> dict[str, Any]:
    """Write one view's values at ``spine`` to ``store``: ``{"entities": rows written}``, and
    the partitions that wrote them when Spark's executors did (Spark into Redis)."""
    sql, names = _values_sql(spec, view_name, keys, spine)
    on_executors = _executors_of(con, store)
    if on_executors is None:  # this process writes, from the result read back in batches
        rows = _rows(con, view_name, sql, names, len(keys), spine, moment, progress)
        return {"entities": store.write(entity, rows)}
    from taxiway.features.online.redis_spark import write_on_executors

    spark, redis = on_executors
    done = write_on_executors(spark, redis, entity, view_name, sql, keys, names, moment)
    if progress:
        progress(view_name, done.rows, done.rows)
    return {"entities": done.rows, "partitions": done.partitions}


def _executors_of(con: SqlEngine, store: OnlineStore) -> tuple[SparkEngine, RedisStore] | None:
    """``(con, store)`` when Spark's executors write the values themselves: Spark into Redis.

    A SQLite store is a file on the driver: the driver writes it, from Spark's result read
    back in batches. Each module is loaded when an object of its class exists.
    """
    spark = sys.modules.get("taxiway.engines.spark")
    redis = sys.modules.get("taxiway.features.online.redis")
    if spark is None or redis is None:
        return None
    if isinstance(con, spark.SparkEngine) and isinstance(store, redis.RedisStore):
        return con, store
    return None


def _rows(
    con: SqlEngine,
    view_name: str,
    sql: str,
    names: list[str],
    width: int,
    spine: str,
    moment: datetime,
    progress: Progress | None,
) -> Iterator[tuple[str, ViewValues]]:
    """The rows of ``sql`` (:func:`_values_sql`; ``width`` key columns) as the store writes
    them, read in batches."""
    total_row = con.fetch_one(f"SELECT count(*) FROM {q(spine)}")  # nosec B608
    total = int(total_row[0]) if total_row else 0
    done = 0
    for batch in con.batches(sql, BATCH_ROWS):
        yield from view_rows(batch, view_name, names, width, moment)
        done += batch.num_rows
        if progress:
            progress(view_name, done, total)
