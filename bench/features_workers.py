"""Each tool's training set, built in a worker process: taxiway's ``build_training_set``, the
hand-written DuckDB floor (and its two older forms) and Feast's ``get_historical_features``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from features_data import FEATURES, TTL, WINDOW_FUNCTIONS, WINDOWS
from toolkit import feast_store, feast_view, own_cpu_seconds, rss


def taxiway_spec(source: Path, spine: Path, mode: str) -> str:
    """The spec of a run: a latest view with ttl 7d, or window aggregates, on an event spine."""
    if mode == "latest":
        view = f"latest: [{', '.join(FEATURES)}], ttl: 7d"
    else:
        aggregates = ", ".join(f"{k}: {v}" for k, v in WINDOW_FUNCTIONS.items())
        view = f"aggregate: {{{aggregates}}}, windows: [{', '.join(WINDOWS)}]"
    return f"""
name: bench_features
sources:
  values:
    kind: file
    path: {source}
    timestamp: event_timestamp
    created: created
  spine:
    kind: file
    path: {spine}
    timestamp: event_timestamp
entities: {{entity: entity_id}}
features:
  v: {{source: values, entity: entity, {view}}}
spine: {{source: spine, entity: entity}}
label: {{name: spine_id, kind: column, expr: spine_id}}
"""


def work_taxiway(
    source: Path, spine: Path, out: Path, mode: str, memory_limit: str | None
) -> dict[str, Any]:
    from taxiway.features.training_set import build_training_set
    from taxiway.spec import Project, load_spec_text

    folder = out.parent / f"{out.stem}.taxiway"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spec_file = folder / "taxiway.yaml"
    text = taxiway_spec(source, spine, mode)
    spec_file.write_text(text)
    base = rss()
    began, cpu = time.perf_counter(), own_cpu_seconds()
    project = Project(
        load_spec_text(text, str(spec_file), base_dir=folder), spec_file, folder / ".state"
    )
    manifest = build_training_set(project, out, memory_limit=memory_limit)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "cpu_seconds": own_cpu_seconds() - cpu,
        "rss_base": base,
        "rows": manifest.rows,
        "phases": manifest.phases,
        "dropped": manifest.dropped,
        "columns": {name: f"v__{name}" for name in FEATURES}
        if mode == "latest"
        else {c: c for c in manifest.features},
    }


# The floor: ties broken inside the ASOF key, so no dedup pass over the source.
# ASOF picks, per spine row, the source row of the entity with the greatest (timestamp,
# created) at or before (t, +infinity): the newest timestamp <= t, then the newest created.
# It writes what taxiway writes: the key, the time, the 10 values and the row id, in time
# order (docs/features.md: "Training rows are in time order"), so both do the same output work.
FLOOR_SQL = """
COPY (
    SELECT s.entity_id, s.event_timestamp AS "timestamp", {values}, s.spine_id
    FROM (SELECT *, {{'t': event_timestamp, 'c': 'infinity'::TIMESTAMP}} AS k
          FROM read_parquet('{spine}')) AS s
    ASOF LEFT JOIN (
        SELECT entity_id, event_timestamp, {features},
               {{'t': event_timestamp, 'c': created}} AS k
        FROM read_parquet('{source}')) AS e
      ON s.entity_id = e.entity_id AND s.k >= e.k
    ORDER BY s.event_timestamp, s.spine_id
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
"""

# The floor as it was until 2026-12-06: the same join, but only spine_id and the values, in
# no particular order (less output work than taxiway does).
FLOOR_LEAN_SQL = """
COPY (
    SELECT s.spine_id, {values}
    FROM (SELECT *, {{'t': event_timestamp, 'c': 'infinity'::TIMESTAMP}} AS k
          FROM read_parquet('{spine}')) AS s
    ASOF LEFT JOIN (
        SELECT entity_id, event_timestamp, {features},
               {{'t': event_timestamp, 'c': created}} AS k
        FROM read_parquet('{source}')) AS e
      ON s.entity_id = e.entity_id AND s.k >= e.k
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
"""

# The textbook form: dedup the source by (entity, timestamp) first, then a plain ASOF.
FLOOR_QUALIFY_SQL = """
COPY (
    WITH src AS (
        SELECT entity_id, event_timestamp, {features}
        FROM read_parquet('{source}')
        QUALIFY row_number() OVER (
            PARTITION BY entity_id, event_timestamp ORDER BY created DESC) = 1
    )
    SELECT s.spine_id, {values}
    FROM read_parquet('{spine}') AS s
    ASOF LEFT JOIN src AS e
      ON s.entity_id = e.entity_id AND s.event_timestamp >= e.event_timestamp
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
"""


def floor_sql(source: Path, spine: Path, out: Path, template: str = FLOOR_SQL) -> str:
    fresh = "e.event_timestamp >= s.event_timestamp - INTERVAL 7 DAY"
    return template.format(
        features=", ".join(FEATURES),
        values=", ".join(f"CASE WHEN {fresh} THEN e.{c} END AS {c}" for c in FEATURES),
        source=source,
        spine=spine,
        out=out,
    )


def work_floor(
    source: Path, spine: Path, out: Path, memory_limit: str | None, template: str
) -> dict[str, Any]:
    import duckdb

    base = rss()
    config = {"memory_limit": memory_limit} if memory_limit else {}
    began, cpu = time.perf_counter(), own_cpu_seconds()
    con = duckdb.connect(config=config)
    (rows,) = con.execute(floor_sql(source, spine, out, template)).fetchone()
    con.close()
    return {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": own_cpu_seconds() - cpu,
        "rss_base": base,
        "rows": int(rows),
        "columns": {name: name for name in FEATURES},
    }


def work_feast(tool: str, source: Path, spine: Path, out: Path) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    import pyarrow.parquet as pq

    imported = time.perf_counter()
    entity, view = feast_view("v", FEATURES, TTL, source)
    offline = "file" if tool == "feast-dask" else "duckdb"
    store = feast_store(out.parent / f"{out.stem}.feast", "bench", offline)
    store.apply([entity, view])
    setup = time.perf_counter() - imported
    base = rss()
    began, cpu = time.perf_counter(), own_cpu_seconds()
    entity_df = pd.read_parquet(spine)
    entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.tz_localize("UTC")
    job = store.get_historical_features(
        entity_df=entity_df, features=[f"v:{name}" for name in FEATURES]
    )
    table = job.to_arrow()
    fetched = time.perf_counter() - began
    pq.write_table(table, out, compression="zstd")
    return {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": own_cpu_seconds() - cpu,
        "fetch_seconds": fetched,
        "setup_seconds": setup,
        "rss_base": base,
        "rows": table.num_rows,
        "columns": {name: name for name in FEATURES},
    }
