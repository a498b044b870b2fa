"""The training-set benchmark's data: one generated source (versions, corrections at the same
timestamp) and an event spine with rows planted on the edges that matter, plus the tools,
windows and sizes every part of the benchmark names.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

ROOT = HERE.parent

DATA_DIR = HERE / ".data" / "features"

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

US = 1_000_000

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
