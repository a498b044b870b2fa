"""Point-in-time training sets: taxiway against Feast's offline stores and a hand-written floor.

One generated source (``--sizes``: 1M or 10M rows; 100,000 entities with 10 or 100 versions
each, 10 float columns, half of the entities with a *correction*: a second row at the same
timestamp with a later ``created``) and one event spine (``--spine``: 100k or 1M rows of
``(spine_id, entity_id, event_timestamp)``, with rows planted exactly on a source timestamp,
exactly at the ttl boundary and 1 µs past it, and 2% of entities that never occur) are
joined by every tool with the same semantics: for spine row (k, t) the source row of k with
the greatest ``event_timestamp <= t`` (ties: the newest ``created``), its values null when
``event_timestamp < t - 7d``. Tools (``--only``):

- ``taxiway``: ``build_training_set`` over a spec with a ``latest`` view (``ttl: 7d``) and an
  event spine; the label is ``kind: column, expr: spine_id`` so rows join back;
- ``taxiway-baseline``: the same, from another checkout's ``src/`` (``--baseline-src``), for
  before/after figures in one run;
- ``floor``: one hand-written DuckDB query, COPY to Parquet: an ASOF LEFT JOIN on the key
  ``{timestamp, created}`` (so ties are broken inside the join, with no dedup pass) and a
  ttl ``CASE``;
  it writes taxiway's columns (key, time, values, row id) in time order, as taxiway does;
- ``floor-lean``: the floor as it was before 2026-12-06: only the row id and the values, in no
  order (less output work than taxiway);
- ``floor-qualify``: the textbook form of the same: dedup the source with ``QUALIFY
  row_number() OVER (PARTITION BY entity, timestamp ORDER BY created DESC) = 1``, then ASOF;
- ``feast-dask``: Feast's ``get_historical_features`` with the ``file`` (dask) offline store;
- ``feast-duckdb``: the same with the ``duckdb`` (ibis) offline store.

Each run is a fresh process (this script with ``--worker``); its peak RSS comes from
``/proc/<pid>/status`` (``VmHWM``, polled, and read by the worker at its end; ``ru_maxrss``
would include the forking parent's own peak). A run is killed past ``--timeout`` seconds or
``--rss-limit`` GiB. The time reported is the call that turns the
Parquet files into a training set on disk (spec or registry set-up and imports excluded,
shown apart). Outputs are then compared row by row on ``spine_id`` against the floor, and
the floor itself against a brute-force range join on a sample of spine rows. A separate
taxiway-only figure builds window aggregates (count/sum/avg of ``f0`` over 7d and 30d),
checked against a brute-force join on a sample.

Feast pins ``pandas<3``, so it lives in its own venv (``--feast-python``, default
``bench/.data/feast-venv/bin/python``)::

    python3.11 -m venv bench/.data/feast-venv
    bench/.data/feast-venv/bin/pip install 'feast[duckdb]==0.67.0' psutil

    .venv/bin/python bench/features.py --wait-idle 600 --windows   # everything (~20 min)
    .venv/bin/python bench/features.py --sizes 10m --spine 1m --only taxiway,floor
    .venv/bin/python bench/features.py --windows-only --sizes 1m,10m
    .venv/bin/python bench/features.py --profile --sizes 10m      # taxiway's SQL vs rewrites

Every run appends its raw figures to ``bench/.data/features/results.jsonl``; the exit status
is 1 when any tool's rows differ from the floor's (Feast's dask store always does).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolkit import busy_cpu_seconds, high_water, machine, markdown_table, rss, versions, wait_idle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA_DIR = HERE / ".data" / "features"
FEAST_PYTHON = HERE / ".data" / "feast-venv" / "bin" / "python"
SEED = 20260607
ENTITIES = 100_000
FEATURES = [f"f{i}" for i in range(10)]
START = datetime(2025, 1, 1)
SPAN = timedelta(days=180)
TTL = timedelta(days=7)
CORRECTED_SHARE = 0.5  # of entities: one version is corrected at the same timestamp
MISSING_ENTITY_SHARE = 0.02  # spine rows of entities the source never saw
PLANT_EXACT, PLANT_TTL, PLANT_PAST_TTL = 0.05, 0.02, 0.01  # shares of spine rows
ROW_GROUP = 1_000_000
MB = 1024 * 1024
US = 1_000_000
RESULT_MARK = "@@bench-result@@ "
TOOLS = (
    "taxiway",
    "taxiway-baseline",
    "floor",
    "floor-lean",
    "floor-qualify",
    "feast-dask",
    "feast-duckdb",
)
FEAST_TOOLS = ("feast-dask", "feast-duckdb")
WINDOWS = ("7d", "30d")
WINDOW_FUNCTIONS = {"n": "count(*)", "total": "sum(f0)", "mean": "avg(f0)"}
WINDOW_SAMPLE = 20_000
FLOOR_SAMPLE = 20_000


# --------------------------------------------------------------------------- sizes


def parse_size(text: str) -> int:
    """``1m`` → 1_000_000, ``100k`` → 100_000, ``250000`` → 250_000."""
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor != 1 else text
    return int(float(number) * factor)


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


# --------------------------------------------------------------------------- data


def source_path(rows: int, seed: int) -> Path:
    return DATA_DIR / f"source-{rows}-seed{seed}.parquet"


def spine_path(spine_rows: int, source_rows: int, seed: int) -> Path:
    return DATA_DIR / f"spine-{spine_rows}-on{source_rows}-seed{seed}.parquet"


def _timestamps(us: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    base = np.int64((START - datetime(1970, 1, 1)) // timedelta(microseconds=1))
    return pa.array(us + base, type=pa.int64()).cast(pa.timestamp("us"))


def ensure_source(rows: int, seed: int) -> Path:
    """The source file: ``rows / ENTITIES`` versions of every entity, shuffled."""
    path = source_path(rows, seed)
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows % ENTITIES:
        raise SystemExit(f"--sizes must be a multiple of {ENTITIES} rows")
    versions = rows // ENTITIES
    if versions < 2:
        raise SystemExit("--sizes needs at least 2 versions per entity")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entity = np.repeat(np.arange(ENTITIES, dtype=np.int64), versions)
    span_us = SPAN // timedelta(microseconds=1)
    ts = rng.integers(0, span_us, rows, dtype=np.int64)
    created = ts + rng.integers(0, 3600 * US, rows, dtype=np.int64)
    # corrections: version 0 of a chosen entity repeats version 1's timestamp, created later
    corrected = np.flatnonzero(rng.random(ENTITIES) < CORRECTED_SHARE) * versions
    ts[corrected] = ts[corrected + 1]
    created[corrected] = created[corrected + 1] + rng.integers(
        US, 48 * 3600 * US, corrected.size, dtype=np.int64
    )
    values = rng.standard_normal((len(FEATURES), rows))
    order = rng.permutation(rows)
    table = pa.table(
        {
            "entity_id": entity[order],
            "event_timestamp": _timestamps(ts[order]),
            "created": _timestamps(created[order]),
            **{name: values[i][order] for i, name in enumerate(FEATURES)},
        }
    )
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="zstd")
    tmp.rename(path)
    return path


def ensure_spine(spine_rows: int, source_rows: int, seed: int) -> Path:
    """The event spine: random (entity, t), plus rows planted on the edges that matter."""
    path = spine_path(spine_rows, source_rows, seed)
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.read_table(
        ensure_source(source_rows, seed), columns=["entity_id", "event_timestamp"]
    )
    src_entity = source["entity_id"].to_numpy()
    src_ts = source["event_timestamp"].cast(pa.int64()).to_numpy()
    base = (START - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    rng = np.random.default_rng(seed + spine_rows)
    span_us = (SPAN + 2 * TTL) // timedelta(microseconds=1)
    entity = rng.integers(0, int(ENTITIES * (1 + MISSING_ENTITY_SHARE)), spine_rows)
    ts = base + rng.integers(0, span_us, spine_rows, dtype=np.int64)
    ttl_us = TTL // timedelta(microseconds=1)
    cut = np.cumsum([0, PLANT_EXACT, PLANT_TTL, PLANT_PAST_TTL]) * spine_rows
    slots = rng.permutation(spine_rows)
    for (lo, hi), shift in zip(itertools.pairwise(cut), (0, ttl_us, ttl_us + 1), strict=True):
        rows = slots[int(lo) : int(hi)]
        picked = rng.integers(0, src_entity.size, rows.size)
        entity[rows] = src_entity[picked]
        ts[rows] = src_ts[picked] + shift
    planted = np.zeros(spine_rows, dtype=np.int8)
    for kind, (lo, hi) in enumerate(itertools.pairwise(cut), start=1):
        planted[slots[int(lo) : int(hi)]] = kind
    table = pa.table(
        {
            "spine_id": np.arange(spine_rows, dtype=np.int64),
            "entity_id": entity.astype(np.int64),
            "event_timestamp": pa.array(ts, type=pa.int64()).cast(pa.timestamp("us")),
            "planted": planted,  # 0 random, 1 on a source timestamp, 2 at t - ttl, 3 past it
        }
    )
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="zstd")
    tmp.rename(path)
    return path


# --------------------------------------------------------------------------- workers


def cpu_seconds() -> float:
    """This process's user + system CPU time: on a shared machine, less swayed by other work
    than the wall time (each tool's threads still compete for the same 2 cores)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
    began, cpu = time.perf_counter(), cpu_seconds()
    project = Project(
        load_spec_text(text, str(spec_file), base_dir=folder), spec_file, folder / ".state"
    )
    manifest = build_training_set(project, out, memory_limit=memory_limit)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu,
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
    began, cpu = time.perf_counter(), cpu_seconds()
    con = duckdb.connect(config=config)
    (rows,) = con.execute(floor_sql(source, spine, out, template)).fetchone()
    con.close()
    return {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": cpu_seconds() - cpu,
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
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64

    repo = out.parent / f"{out.stem}.feast"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(repo / "registry.db"),
        offline_store={"type": "file" if tool == "feast-dask" else "duckdb"},
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="v",
        entities=[entity],
        ttl=TTL,
        schema=[Field(name=name, dtype=Float64) for name in FEATURES],
        source=FileSource(
            path=str(source), timestamp_field="event_timestamp", created_timestamp_column="created"
        ),
    )
    store = FeatureStore(config=config)
    store.apply([entity, view])
    setup = time.perf_counter() - imported
    base = rss()
    began, cpu = time.perf_counter(), cpu_seconds()
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
        "cpu_seconds": cpu_seconds() - cpu,
        "fetch_seconds": fetched,
        "setup_seconds": setup,
        "rss_base": base,
        "rows": table.num_rows,
        "columns": {name: name for name in FEATURES},
    }


def worker(args: argparse.Namespace) -> None:
    tool, source, spine, out = args.worker, Path(args.source), Path(args.spine_file), Path(args.out)
    out.unlink(missing_ok=True)
    if tool in ("taxiway", "taxiway-baseline"):  # the baseline: another checkout's src/
        result = work_taxiway(source, spine, out, args.mode, args.memory_limit)
    elif tool == "floor":
        result = work_floor(source, spine, out, args.memory_limit, FLOOR_SQL)
    elif tool == "profile":
        result = work_profile(source, spine, out)
    elif tool == "floor-lean":
        result = work_floor(source, spine, out, args.memory_limit, FLOOR_LEAN_SQL)
    elif tool == "floor-qualify":
        result = work_floor(source, spine, out, args.memory_limit, FLOOR_QUALIFY_SQL)
    else:
        result = work_feast(tool, source, spine, out)
    result["vmhwm"] = high_water()
    print(RESULT_MARK + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- driver


def spawn(
    tool: str,
    source: Path,
    spine: Path,
    out: Path,
    *,
    mode: str,
    timeout: float,
    feast_python: Path,
    memory_limit: str | None,
    rss_limit: int,
    src: Path = ROOT / "src",
) -> dict[str, Any]:
    """Run one tool in a fresh process; its result plus wall time and peak RSS (VmHWM).

    A run is killed past ``timeout`` seconds or ``rss_limit`` bytes of resident memory."""
    python = str(feast_python) if tool in FEAST_TOOLS else sys.executable
    command = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        "--source",
        str(source),
        "--spine-file",
        str(spine),
        "--out",
        str(out),
        "--mode",
        mode,
    ]
    if memory_limit:
        command += ["--memory-limit", memory_limit]
    log = out.with_suffix(".log")
    env = {**os.environ, "PYTHONPATH": str(src), "FEAST_USAGE": "False"}
    busy = busy_cpu_seconds()
    began = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        killed = ""
        peak = 0
        while True:
            peak = max(peak, high_water(process.pid) or 0)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - began > timeout:
                killed = f"timed out after {timeout:.0f} s (killed)"
            elif peak > rss_limit:
                killed = f"passed {rss_limit / 2**30:.0f} GiB RSS after {time.perf_counter() - began:.0f} s (killed)"
            if killed:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    child_cpu = usage.ru_utime + usage.ru_stime
    others = max(busy_cpu_seconds() - busy - child_cpu, 0.0) / max(wall, 1e-9)
    text = log.read_text()
    result: dict[str, Any] = {
        "tool": tool,
        "wall": wall,
        "peak_rss": peak,
        "maxrss": usage.ru_maxrss * 1024,
        "cpu": child_cpu,
        "others": others,  # busy cores of other work meanwhile
        "exit": process.returncode,
        "out": str(out),
    }
    marked = [line for line in text.splitlines() if line.startswith(RESULT_MARK)]
    if killed:
        result["error"] = killed
    elif marked:
        result.update(json.loads(marked[-1][len(RESULT_MARK) :]))
        result["peak_rss"] = max(peak, result.get("vmhwm") or 0)
    else:
        tail = [line for line in text.strip().splitlines() if line.strip()][-3:]
        reason = "killed by the OOM killer?" if process.returncode == -9 else " | ".join(tail)
        result["error"] = f"exit {process.returncode}: {reason}"[:400]
    return result


def check(tool_out: dict[str, Any], floor_out: dict[str, Any], spine: Path) -> dict[str, int]:
    """Row-by-row comparison of a tool's output with the floor's, joined on ``spine_id``."""
    import duckdb

    con = duckdb.connect()
    spine_rows = con.execute(f"SELECT count(*) FROM read_parquet('{spine}')").fetchone()[0]
    mine = tool_out["columns"]
    pairs = [(f"t.{_q(mine[c])}", f"f.{_q(c)}") for c in FEATURES]
    differs = " OR ".join(f"{a} IS DISTINCT FROM {b}" for a, b in pairs)
    null_extra = " OR ".join(f"({a} IS NULL AND {b} IS NOT NULL)" for a, b in pairs)
    value_extra = " OR ".join(f"({a} IS NOT NULL AND {b} IS NULL)" for a, b in pairs)
    other = " OR ".join(f"({a} <> {b})" for a, b in pairs)
    tool_file, floor_file = tool_out["out"], floor_out["out"]
    row = con.execute(
        f"""
        WITH t AS (SELECT * FROM read_parquet('{tool_file}')),
             f AS (SELECT * FROM read_parquet('{floor_file}')),
             counted AS (SELECT spine_id, count(*) AS n FROM t GROUP BY spine_id)
        SELECT
            (SELECT count(*) FROM t),
            (SELECT count(*) FROM f WHERE spine_id NOT IN (SELECT spine_id FROM t)),
            (SELECT coalesce(sum(n - 1), 0) FROM counted WHERE n > 1),
            (SELECT count(*) FROM t WHERE spine_id NOT IN (SELECT spine_id FROM f)),
            count(*) FILTER (WHERE {differs}),
            count(*) FILTER (WHERE {null_extra}),
            count(*) FILTER (WHERE {value_extra}),
            count(*) FILTER (WHERE {other})
        FROM t JOIN f USING (spine_id)
        """
    ).fetchone()
    con.close()
    keys = (
        "rows",
        "missing",
        "duplicated",
        "unknown",
        "wrong",
        "null_not_value",
        "value_not_null",
        "other_value",
    )
    result = dict(zip(keys, (int(v) for v in row), strict=True))
    result["spine_rows"] = int(spine_rows)
    result["bad"] = result["missing"] + result["duplicated"] + result["unknown"] + result["wrong"]
    return result


PLANTED = {0: "random t", 1: "t on a source timestamp", 2: "t = ts + ttl", 3: "t = ts + ttl + 1µs"}


def diagnose(
    tool_out: dict[str, Any], floor_out: dict[str, Any], source: Path, spine: Path
) -> list[str]:
    """Why rows differ: each wrong ``f0`` traced back to the source row it came from."""
    import duckdb

    con = duckdb.connect()
    f0 = _q(tool_out["columns"]["f0"])
    wrong = con.execute(
        f"""
        WITH t AS (SELECT spine_id, {f0} AS f0 FROM read_parquet('{tool_out["out"]}')),
             f AS (SELECT spine_id, f0 FROM read_parquet('{floor_out["out"]}')),
             s AS (SELECT spine_id, entity_id, event_timestamp AS t, planted
                   FROM read_parquet('{spine}')),
             w AS (SELECT s.*, t.f0 AS tf0, f.f0 AS ff0 FROM s JOIN t USING (spine_id)
                   JOIN f USING (spine_id) WHERE t.f0 IS DISTINCT FROM f.f0),
             src AS (SELECT entity_id, f0, event_timestamp AS ts FROM read_parquet('{source}')
                     WHERE entity_id IN (SELECT entity_id FROM w))
        SELECT w.planted,
          CASE WHEN w.tf0 IS NULL THEN 'null instead of a value'
               WHEN tr.ts IS NULL THEN 'a value from no source row'
               WHEN tr.ts > w.t THEN 'a row from after t (leak)'
               WHEN tr.ts < w.t - INTERVAL 7 DAY THEN 'a row older than the ttl'
               WHEN fr.ts IS NULL THEN 'a value where no row is fresh'
               WHEN tr.ts = fr.ts THEN 'the losing row of a tie (older created)'
               WHEN tr.ts < fr.ts THEN 'an older row than the latest'
               ELSE 'other' END AS cause,
          count(*)
        FROM w LEFT JOIN src AS tr ON tr.entity_id = w.entity_id AND tr.f0 = w.tf0
               LEFT JOIN src AS fr ON fr.entity_id = w.entity_id AND fr.f0 = w.ff0
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    missing = con.execute(
        f"""
        SELECT s.planted, f.f0 IS NULL, count(*)
        FROM read_parquet('{floor_out["out"]}') AS f JOIN read_parquet('{spine}') AS s USING (spine_id)
        WHERE spine_id NOT IN (SELECT spine_id FROM read_parquet('{tool_out["out"]}'))
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    con.close()
    lines = [f"wrong f0, {PLANTED[k]}: {cause}: {n:,}" for k, cause, n in wrong]
    lines += [
        f"missing row, {PLANTED[k]}, floor value {'null' if null else 'present'}: {n:,}"
        for k, null, n in missing
    ]
    return lines


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_floor(
    floor_out: dict[str, Any], source: Path, spine: Path, sample: int
) -> dict[str, Any]:
    """The floor against a brute-force join (no ASOF, no window dedup) on a sample of rows."""
    import duckdb

    con = duckdb.connect()
    features = ", ".join(FEATURES)
    pairs = " OR ".join(f"r.{c} IS DISTINCT FROM f.{c}" for c in FEATURES)
    row = con.execute(
        f"""
        WITH s AS (SELECT * FROM read_parquet('{spine}') USING SAMPLE {sample} ROWS (reservoir, 7)),
             cand AS (
                SELECT s.spine_id, e.*, row_number() OVER (
                    PARTITION BY s.spine_id ORDER BY e.event_timestamp DESC, e.created DESC) AS rk
                FROM s JOIN read_parquet('{source}') AS e
                  ON e.entity_id = s.entity_id AND e.event_timestamp <= s.event_timestamp
                 AND e.event_timestamp >= s.event_timestamp - INTERVAL 7 DAY
             ),
             r AS (
                SELECT s.spine_id, {", ".join(f"c.{c}" for c in FEATURES)}
                FROM s LEFT JOIN (SELECT spine_id, {features} FROM cand WHERE rk = 1) AS c
                  USING (spine_id)
             )
        SELECT count(*), count(*) FILTER (WHERE {pairs}), count(*) FILTER (WHERE r.f0 IS NULL)
        FROM r JOIN read_parquet('{floor_out["out"]}') AS f USING (spine_id)
        """
    ).fetchone()
    con.close()
    return {"sampled": int(row[0]), "wrong": int(row[1]), "null": int(row[2])}


def check_windows(out: Path, source: Path, spine: Path, sample: int) -> dict[str, int]:
    """Window aggregates against a brute-force range join on a sample of spine rows."""
    import duckdb

    con = duckdb.connect()
    exprs, compare = [], []
    for window in WINDOWS:
        days = int(window[:-1])
        inside = (
            f"e.event_timestamp <= s.event_timestamp AND "
            f"e.event_timestamp > s.event_timestamp - INTERVAL {days} DAY"
        )
        exprs += [
            f"count(e.entity_id) FILTER (WHERE {inside}) AS n_{window}",
            f"coalesce(sum(e.f0) FILTER (WHERE {inside}), 0) AS total_{window}",
            f"avg(e.f0) FILTER (WHERE {inside}) AS mean_{window}",
        ]
        compare += [
            f"r.n_{window} <> t.v__n_{window}",
            f"abs(r.total_{window} - t.v__total_{window}) > 1e-9 * (1 + abs(r.total_{window}))",
            f"(r.mean_{window} IS NULL) <> (t.v__mean_{window} IS NULL)",
            f"abs(r.mean_{window} - t.v__mean_{window}) > 1e-9 * (1 + abs(r.mean_{window}))",
        ]
    row = con.execute(
        f"""
        WITH s AS (SELECT * FROM read_parquet('{spine}') USING SAMPLE {sample} ROWS (reservoir, 7)),
             r AS (
                SELECT s.spine_id, {", ".join(exprs)}
                FROM s LEFT JOIN read_parquet('{source}') AS e
                  ON e.entity_id = s.entity_id
                 AND e.event_timestamp > s.event_timestamp - INTERVAL 30 DAY
                 AND e.event_timestamp <= s.event_timestamp
                GROUP BY s.spine_id
             )
        SELECT count(*), count(*) FILTER (WHERE {" OR ".join(f"coalesce({c}, FALSE)" for c in compare)})
        FROM r JOIN read_parquet('{out}') AS t USING (spine_id)
        """
    ).fetchone()
    con.close()
    return {"sampled": int(row[0]), "wrong": int(row[1])}


# --------------------------------------------------------------------------- report


def _mb(n: float | None) -> str:
    return "–" if n is None else f"{n / MB:,.0f} MB"


def _s(n: float | None) -> str:
    return "–" if n is None else f"{n:.2f} s"


def run_tool(
    args: argparse.Namespace,
    tool: str,
    source: Path,
    spine: Path,
    out: Path,
    mode: str,
    attempt: int,
) -> dict[str, Any]:
    """One run of ``tool`` (after waiting for a quiet machine if asked), printed as it ends."""
    if args.wait_idle:
        wait_idle(args.wait_idle, say=print)
    run = spawn(
        tool,
        source,
        spine,
        out,
        mode=mode,
        timeout=args.timeout,
        feast_python=args.feast_python,
        memory_limit=args.memory_limit,
        rss_limit=int(args.rss_limit * 2**30),
        src=args.baseline_src if tool == "taxiway-baseline" else ROOT / "src",
    )
    status = run.get("error") or ("done" if tool == "profile" else f"{run['seconds']:.2f} s")
    if "cpu_seconds" in run:
        status += f" ({run['cpu_seconds']:.2f} s CPU)"
    print(
        f"  {tool} run {attempt + 1}: {status}, peak {_mb(run['peak_rss'])}, "
        f"other load {run['others']:.2f} cores",
        flush=True,
    )
    return run


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest successful run (peak RSS: the highest of all runs)."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[-1]
    chosen = dict(min(good, key=lambda r: r["seconds"]))
    chosen["peak_rss"] = max(r["peak_rss"] for r in runs)
    chosen["runs"] = [round(r["seconds"], 3) for r in good]
    chosen["cpu_runs"] = [round(r["cpu_seconds"], 2) for r in good if "cpu_seconds" in r]
    chosen["others_max"] = max(r["others"] for r in runs)
    return chosen


def run_latest(args: argparse.Namespace, tools: list[str]) -> bool:
    ok = True
    summary: list[list[str]] = []
    for rows in args.sizes:
        source = ensure_source(rows, args.seed)
        for spine_rows in args.spine:
            spine = ensure_spine(spine_rows, rows, args.seed)
            case = f"{label(rows)} x {label(spine_rows)}"
            print(f"\n## latest value, ttl 7d: {case} (source rows x spine rows)\n", flush=True)
            order = ["floor"] + [t for t in tools if t != "floor"]
            # interleaved (floor, taxiway, ..., floor, taxiway, ...) so a change of load hits
            # every tool alike; a tool that failed once is not run again
            runs_of: dict[str, list[dict[str, Any]]] = {tool: [] for tool in order}
            for attempt in range(args.repeat):
                for tool in order:
                    runs = runs_of[tool]
                    if any("error" in r for r in runs) or (tool == "feast-dask" and runs):
                        continue
                    out = DATA_DIR / "out" / f"{tool}-{rows}-{spine_rows}.parquet"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    runs.append(run_tool(args, tool, source, spine, out, "latest", attempt))
            results = {tool: best(runs) for tool, runs in runs_of.items()}
            floor = results["floor"]
            if "error" in floor:
                print(f"  the floor failed: {floor['error']}")
                return False
            verdicts: dict[str, dict[str, Any]] = {}
            if args.floor_sample:
                verdicts["floor-reference"] = check_floor(floor, source, spine, args.floor_sample)
                print(f"  floor vs brute force on a sample: {verdicts['floor-reference']}")
                ok &= verdicts["floor-reference"]["wrong"] == 0
            table_rows = []
            for tool in order:
                run = results[tool]
                if "error" in run:
                    table_rows.append([tool, run["error"], "–", _mb(run["peak_rss"]), "–", "–"])
                    summary.append([case, tool, run["error"], "–", _mb(run["peak_rss"]), "–"])
                    continue
                diff = check(run, floor, spine) if tool != "floor" else None
                if diff:
                    verdicts[tool] = diff
                    ok &= diff["bad"] == 0
                    if diff["bad"]:
                        diff["causes"] = diagnose(run, floor, source, spine)
                ratio = run["seconds"] / floor["seconds"]
                bad = "0" if not diff else f"{diff['bad']:,}"
                detail = (
                    "–"
                    if not diff
                    else (
                        f"missing {diff['missing']:,}, duplicated {diff['duplicated']:,}, "
                        f"wrong {diff['wrong']:,} (null for value {diff['null_not_value']:,}, "
                        f"value for null {diff['value_not_null']:,}, other value "
                        f"{diff['other_value']:,})"
                    )
                )
                table_rows.append(
                    [tool, _s(run["seconds"]), f"{ratio:.2f}x", _mb(run["peak_rss"]), bad, detail]
                )
                summary.append(
                    [case, tool, _s(run["seconds"]), f"{ratio:.2f}x", _mb(run["peak_rss"]), bad]
                )
            print()
            print(
                markdown_table(
                    ["tool", "time", "vs floor", "peak RSS", "wrong rows", "disagreements"],
                    table_rows,
                )
            )
            extras = []
            for tool in order:
                run = results[tool]
                if "error" in run:
                    continue
                note = (
                    f"  {tool}: runs {run['runs']}, process wall {run['wall']:.2f} s, "
                    f"other load up to {run['others_max']:.2f} cores"
                )
                if run.get("cpu_runs"):
                    note += f", CPU s of the timed part {run['cpu_runs']}"
                if "phases" in run:
                    note += f", phases {run['phases']}"
                if "setup_seconds" in run:
                    note += (
                        f", imports+apply {run['setup_seconds']:.2f} s, "
                        f"to_arrow {run['fetch_seconds']:.2f} s"
                    )
                extras.append(note)
            print("\n".join(extras))
            for tool, verdict in verdicts.items():
                for cause in verdict.get("causes", []):
                    print(f"  {tool}: {cause}")
            _goals(case, results, verdicts, rows, spine_rows)
            record(args, "latest", case, results, verdicts)
    if len(summary) > 1:
        print("\n## summary\n")
        print(
            markdown_table(["case", "tool", "time", "vs floor", "peak RSS", "wrong rows"], summary)
        )
    return ok


def _goals(
    case: str,
    results: dict[str, dict[str, Any]],
    verdicts: dict[str, dict[str, Any]],
    rows: int,
    spine_rows: int,
) -> None:
    taxiway = results.get("taxiway")
    if not taxiway or "error" in taxiway:
        return
    feast = [r["seconds"] for t, r in results.items() if t in FEAST_TOOLS and "error" not in r]
    floor = results["floor"]["seconds"]
    lines = [f"\n  goals ({case}):"]
    if rows == 10_000_000 and spine_rows == 1_000_000:
        lines.append(
            f"    time <= 15 s: {taxiway['seconds']:.2f} s "
            f"{'MET' if taxiway['seconds'] <= 15 else 'MISSED'}"
        )
        lines.append(
            f"    peak RSS <= 2 GB: {_mb(taxiway['peak_rss'])} "
            f"{'MET' if taxiway['peak_rss'] <= 2 * 1024 * MB else 'MISSED'}"
        )
    if feast:
        speedup = min(feast) / taxiway["seconds"]
        lines.append(
            f"    >= 2x faster than Feast's fastest store: {speedup:.1f}x "
            f"{'MET' if speedup >= 2 else 'MISSED'}"
        )
    ratio = taxiway["seconds"] / floor
    lines.append(
        f"    within 1.3x of the floor: {ratio:.2f}x {'MET' if ratio <= 1.3 else 'MISSED'}"
    )
    wrong = verdicts.get("taxiway", {}).get("bad")
    if wrong is not None:
        lines.append(f"    zero wrong rows: {wrong} {'MET' if wrong == 0 else 'MISSED'}")
    print("\n".join(lines))


def record(
    args: argparse.Namespace,
    kind: str,
    case: str,
    results: dict[str, Any],
    verdicts: dict[str, Any],
) -> None:
    """Append the raw figures to ``bench/.data/features/results.jsonl`` (for the write-up)."""
    line = {
        "kind": kind,
        "case": case,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{machine()}, {versions('duckdb')}",
        "argv": sys.argv[1:],
        "results": results,
        "verdicts": verdicts,
    }
    with (DATA_DIR / "results.jsonl").open("a") as handle:
        handle.write(json.dumps(line, default=str) + "\n")


def run_windows(args: argparse.Namespace) -> bool:
    ok = True
    table_rows = []
    for rows in args.sizes:
        source = ensure_source(rows, args.seed)
        for spine_rows in args.spine:
            spine = ensure_spine(spine_rows, rows, args.seed)
            case = f"{label(rows)} x {label(spine_rows)}"
            runs = []
            for _ in range(args.repeat):
                out = DATA_DIR / "out" / f"taxiway-windows-{rows}-{spine_rows}.parquet"
                out.parent.mkdir(parents=True, exist_ok=True)
                run = run_tool(args, "taxiway", source, spine, out, "windows", len(runs))
                runs.append(run)
                if "error" in run:
                    break
            run = best(runs)
            if "error" in run:
                table_rows.append([case, run["error"], _mb(run["peak_rss"]), "–", "–"])
                ok = False
                continue
            verdict = check_windows(
                Path(run["out"]), source, spine, args.floor_sample or WINDOW_SAMPLE
            )
            ok &= verdict["wrong"] == 0
            table_rows.append(
                [
                    case,
                    _s(run["seconds"]),
                    _mb(run["peak_rss"]),
                    f"{verdict['wrong']} of {verdict['sampled']:,}",
                    json.dumps(run["phases"]),
                ]
            )
            print(f"  windows {case}: {_s(run['seconds'])}, runs {run['runs']}", flush=True)
            record(args, "windows", case, {"taxiway": run}, {"sample": verdict})
    print(
        f"\n## window aggregates ({', '.join(WINDOW_FUNCTIONS.values())} x {', '.join(WINDOWS)}),"
        " taxiway only (Feast has no offline window aggregates)\n"
    )
    print(
        markdown_table(
            ["source x spine", "time", "peak RSS", "wrong (sample vs brute force)", "phases"],
            table_rows,
        )
    )
    return ok


# --------------------------------------------------------------------------- profile


def latest_variants(source_view: str) -> dict[str, str]:
    """Other ways to compute the latest view over taxiway's own staged source and spine
    (``__spine``: ``__sid``, ``entity_id``, ``__t``), each returning ``__sid`` + values."""
    cols = ", ".join(FEATURES)
    fresh = "e.__ts >= s.__t - INTERVAL 7 DAY"
    values = ", ".join(f"CASE WHEN {fresh} THEN e.{c} END AS v__{c}" for c in FEATURES)
    src = _q(source_view)
    return {
        "struct-key ASOF, no dedup pass": f"""
            SELECT s.__sid, {values}
            FROM (SELECT *, {{'t': __t, 'known': TRUE, 'c': 'infinity'::TIMESTAMP}} AS __k
                  FROM __spine) AS s
            ASOF LEFT JOIN (
                SELECT entity_id, event_timestamp AS __ts, {cols},
                       {{'t': event_timestamp, 'known': created IS NOT NULL, 'c': created}} AS __k
                FROM {src}) AS e
              ON s.entity_id = e.entity_id AND s.__k >= e.__k""",
        "struct-key ASOF + value hash as the last tie-break": f"""
            SELECT s.__sid, {values}
            FROM (SELECT *, {{'t': __t, 'known': TRUE, 'c': 'infinity'::TIMESTAMP,
                              'h': 18446744073709551615::UBIGINT}} AS __k
                  FROM __spine) AS s
            ASOF LEFT JOIN (
                SELECT entity_id, event_timestamp AS __ts, {cols},
                       {{'t': event_timestamp, 'known': created IS NOT NULL, 'c': created,
                         'h': hash({cols})}} AS __k
                FROM {src}) AS e
              ON s.entity_id = e.entity_id AND s.__k >= e.__k""",
        "range join within the ttl, bucketed by ttl, arg_max over a sort key": f"""
            WITH s AS (
                SELECT __sid, entity_id, __t, unnest([b, b + 1]) AS __b
                FROM (SELECT __sid, entity_id, __t,
                             epoch_us(__t - INTERVAL 7 DAY) // {TTL // timedelta(microseconds=1)}
                             AS b FROM __spine)),
            e AS (
                SELECT entity_id, event_timestamp AS __ts, created, {cols},
                       epoch_us(event_timestamp) // {TTL // timedelta(microseconds=1)} AS __b
                FROM {src} WHERE event_timestamp IS NOT NULL AND entity_id IS NOT NULL),
            m AS (
                SELECT s.__sid,
                       arg_max({{{", ".join(f"'{c}': e.{c}" for c in FEATURES)}}},
                               create_sort_key(e.__ts, 'ASC NULLS FIRST', e.created,
                                   'ASC NULLS FIRST',
                                   {", ".join(f"e.{c}, 'DESC NULLS FIRST'" for c in FEATURES)}))
                           AS __r
                FROM s JOIN e ON s.entity_id = e.entity_id AND s.__b = e.__b
                 AND e.__ts >= s.__t - INTERVAL 7 DAY AND e.__ts <= s.__t
                GROUP BY s.__sid)
            SELECT __sid, {", ".join(f"m.__r.{c} AS v__{c}" for c in FEATURES)}
            FROM __spine LEFT JOIN m USING (__sid)""",
        "range join within the ttl": f"""
            SELECT s.__sid, {", ".join(f"e.{c} AS v__{c}" for c in FEATURES)}
            FROM __spine AS s LEFT JOIN (
                SELECT s.__sid, e.*
                FROM __spine AS s JOIN {src} AS e
                  ON s.entity_id = e.entity_id AND e.event_timestamp <= s.__t
                 AND e.event_timestamp >= s.__t - INTERVAL 7 DAY
                QUALIFY row_number() OVER (PARTITION BY s.__sid
                    ORDER BY e.event_timestamp DESC, e.created DESC NULLS LAST, {cols}) = 1
            ) AS e USING (__sid)""",
        "plain ASOF, ties unresolved (lower bound)": f"""
            SELECT s.__sid, {values}
            FROM __spine AS s ASOF LEFT JOIN (
                SELECT entity_id, event_timestamp AS __ts, {cols} FROM {src}) AS e
              ON s.entity_id = e.entity_id AND s.__t >= e.__ts""",
    }


def work_profile(source: Path, spine: Path, out: Path) -> dict[str, Any]:
    """Time taxiway's latest-view SQL against rewrites, on taxiway's own staged inputs."""
    from taxiway.data.stage import stage_sources
    from taxiway.engines.duckdb import connect
    from taxiway.features.pit import compute_view, latest_plan
    from taxiway.features.spine import build_spine
    from taxiway.spec import Project, load_spec_text

    folder = out.parent / f"{out.stem}.profile"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spec_file = folder / "taxiway.yaml"
    text = taxiway_spec(source, spine, "latest")
    spec_file.write_text(text)
    project = Project(load_spec_text(text, str(spec_file), base_dir=folder), spec_file, folder)
    con = connect(temp_directory=folder / "tmp")
    staged = stage_sources(project, con, ["values", "spine"], run_id="profile")
    build_spine(con, project.spec, staged["spine"].view, "__spine")
    view = staged["values"].view
    timings: dict[str, float] = {}

    def timed(name: str, action: Any) -> None:
        runs = []
        for _ in range(2):
            wait_idle(30)
            began = time.perf_counter()
            action()
            runs.append(time.perf_counter() - began)
        timings[name] = min(runs)

    timed(
        "taxiway: pit.compute_view",
        lambda: compute_view(con, project.spec, "v", view, "__spine", "__f_taxiway"),
    )
    timed(
        "taxiway: pit.latest_plan (the guard alone)",
        lambda: latest_plan(con, project.spec, "v", view, "__spine"),
    )
    for plan in ("asof", "bucketed"):
        timed(
            f"taxiway: pit.compute_view, plan={plan}",
            lambda plan=plan: compute_view(
                con, project.spec, "v", view, "__spine", f"__f_{plan}", plan=plan
            ),
        )
    cols = ", ".join(FEATURES)
    timed(
        "taxiway's dedup pass alone",
        lambda: con.execute(
            f"SELECT count(*) FROM (SELECT entity_id, {cols} FROM {_q(view)} QUALIFY "
            "row_number() OVER (PARTITION BY entity_id, event_timestamp "
            f"ORDER BY created DESC NULLS LAST, {cols}) = 1)"
        ).fetchall(),
    )
    differs: dict[str, int] = {}
    for index, (name, sql) in enumerate(latest_variants(view).items()):
        target = f"__variant{index}"
        timed(
            name,
            lambda sql=sql, target=target: con.execute(
                f"CREATE OR REPLACE TEMP TABLE {target} AS {sql}"
            ),
        )
        pairs = " OR ".join(f"a.v__{c} IS DISTINCT FROM b.v__{c}" for c in FEATURES)
        differs[name] = int(
            con.execute(
                f"SELECT count(*) FROM __f_taxiway AS a FULL JOIN {target} AS b USING (__sid) "
                f"WHERE {pairs}"
            ).fetchone()[0]
        )
    con.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": 0.0, "timings": timings, "differs": differs, "columns": {}}


def run_profile(args: argparse.Namespace) -> None:
    for rows in args.sizes:
        source = ensure_source(rows, args.seed)
        for spine_rows in args.spine:
            spine = ensure_spine(spine_rows, rows, args.seed)
            out = DATA_DIR / "out" / f"profile-{rows}-{spine_rows}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            run = run_tool(args, "profile", source, spine, out, "latest", 0)
            case = f"{label(rows)} x {label(spine_rows)}"
            print(f"\n## the latest view's SQL and rewrites: {case} (best of 2)\n")
            if "error" in run:
                print(run["error"])
                continue
            print(
                markdown_table(
                    ["formulation", "time", "rows differing from taxiway's"],
                    [
                        [name, _s(t), str(run["differs"].get(name, "–"))]
                        for name, t in run["timings"].items()
                    ],
                )
            )
            record(args, "profile", case, {"profile": run}, {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1m,10m", help="source rows, e.g. 1m,10m")
    parser.add_argument("--spine", default="100k,1m", help="spine rows, e.g. 100k,1m")
    parser.add_argument(
        "--only",
        default=",".join(t for t in TOOLS if t != "taxiway-baseline"),
        help=f"any of {','.join(TOOLS)}",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tool but feast-dask (run once)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument(
        "--rss-limit", type=float, default=12, help="GiB of RSS at which a run is killed"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each run, wait up to this many seconds for other work to stop",
    )
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 2GB")
    parser.add_argument("--feast-python", type=Path, default=FEAST_PYTHON)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="src/ of another taxiway checkout, run as tool taxiway-baseline (before/after: "
        "git worktree add /tmp/before <commit>; --baseline-src /tmp/before/src)",
    )
    parser.add_argument(
        "--floor-sample",
        type=int,
        default=FLOOR_SAMPLE,
        help="spine rows checked by brute force (0: skip)",
    )
    parser.add_argument("--windows", action="store_true", help="also run the window figure")
    parser.add_argument("--windows-only", action="store_true", help="only the window figure")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="time taxiway's latest-view SQL against rewrites, on its own staged inputs",
    )
    parser.add_argument("--worker", choices=(*TOOLS, "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--spine-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="latest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    args.spine = [parse_size(s) for s in args.spine.split(",") if s.strip()]
    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    if "taxiway-baseline" in tools and not args.baseline_src:
        parser.error("--only taxiway-baseline needs --baseline-src")
    if any(t in FEAST_TOOLS for t in tools) and not Path(args.feast_python).exists():
        parser.error(f"no Feast interpreter at {args.feast_python} (see the module docstring)")
    print(
        f"# bench/features.py {' '.join(sys.argv[1:])}\n\nmachine: {machine()}, {versions('duckdb')}"
    )
    ok = True
    if args.profile:
        run_profile(args)
        return 0
    if not args.windows_only:
        ok &= run_latest(args, tools)
    if args.windows or args.windows_only:
        ok &= run_windows(args)
    if not ok:
        print("\nDISAGREEMENT: some tool's rows differ from the floor (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
