"""`taxiway features compact`: rebuild tiled views' tiles from the offline history.

The events come from the staged source (the same clean rows a training set reads), with the
timestamp cast the way :mod:`taxiway.features.pit` casts it, so the tiles hold exactly the
events the offline SQL sees. Materialization calls :func:`rebuild_view` for a tiled view whose
data or definition changed since its last run; this command rebuilds on demand (e.g. nightly),
optionally keeping only the tiles from a time on (``since``), which is how tiles older than any
read will need are dropped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from taxiway.data.contracts.validate import new_run_id
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.engines.duckdb import quote_identifier as q
from taxiway.errors import FeatureError
from taxiway.features.tiles import Event, TiledView, events_of, replace_tiles, tiled_views
from taxiway.spec.project import Project

__all__ = ["CompactReport", "compact", "offline_events", "rebuild_view"]

BATCH_ROWS = 50_000
_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class CompactReport:
    """What one compaction wrote: tiles per view."""

    views: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0


def offline_events(
    con: duckdb.DuckDBPyConnection, view: TiledView, source_view: str
) -> Iterator[tuple[str, Event]]:
    """``(entity key, event)`` of every clean row of ``source_view`` (keys and time present)."""
    columns = ", ".join(q(c) for c in dict.fromkeys([*view.keys, *view.inputs]))
    ts = q(view.timestamp)
    reader = con.sql(
        f"SELECT {columns}, CAST({ts} AS TIMESTAMP) AS {ts} FROM {q(source_view)} "  # nosec B608
        f"WHERE {ts} IS NOT NULL"
    ).to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        yield from events_of(view, pa.Table.from_batches([batch]))


def rebuild_view(
    con: duckdb.DuckDBPyConnection,
    view: TiledView,
    store: object,
    source_view: str,
    *,
    since: datetime | None = None,
) -> int:
    """Replace ``view``'s tiles by those of ``source_view``'s rows; return the tiles written.

    ``since``: keep only the tiles a read at ``since`` or later can touch (None: all).
    """
    since_us = None
    if since is not None:
        longest = max(w for _, _, _, w in view.features) - view.available_after_us
        since_us = (since.astimezone(UTC) - _EPOCH) // _US - max(longest, 0)
    return replace_tiles(store, view, offline_events(con, view, source_view), since_us=since_us)


def compact(
    project: Project,
    store: object,
    *,
    views: list[str] | None = None,
    since: datetime | None = None,
) -> CompactReport:
    """Rebuild the tiles of ``views`` (default: every tiled view) from the offline history."""
    spec = project.spec
    names = views if views is not None else tiled_views(spec)
    if not names:
        raise FeatureError(
            "no feature view declares `tiles:`, so there is nothing to compact",
            fix="add `tiles: 1h` (or 1d) to an aggregate view, e.g. features.<view>.tiles",
        )
    tiled = [TiledView.of(spec, name) for name in names]
    started = time.perf_counter()
    report = CompactReport()
    run_id = new_run_id()
    temp = project.state_dir / "tmp" / run_id
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp)
    try:
        sources = sorted(
            {spec.features[v.name].source for v in tiled}, key=list(spec.sources).index
        )
        staged = stage_sources(project, con, sources, run_id=run_id, keep_quarantine=False)
        for view in tiled:
            source = staged[spec.features[view.name].source]
            report.views[view.name] = rebuild_view(con, view, store, source.view, since=since)
    finally:
        con.close()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)
    report.duration_s = time.perf_counter() - started
    return report
