"""The online-lookup benchmark's data: six views of generated values (two versions of every key,
the newer one winning), the keys each call asks for, and the true newest values of a sample.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


DATA_DIR = HERE / ".data" / "online"


SEED = 20260607


WARMUP = 100


# view name -> number of features; "wide" alone is the one-view case, the rest the five-views
VIEWS = {"wide": 10, "a": 5, "b": 5, "c": 5, "d": 5, "e": 5}


CASES = {"one-view": ["wide"], "five-views": ["a", "b", "c", "d", "e"]}


BATCHES = (1, 100)


def feature_names(view: str) -> list[str]:
    return [f"{view}_x{i}" for i in range(VIEWS[view])]


def ensure_data(entities: int, seed: int) -> tuple[Path, datetime]:
    """One Parquet file per view (two versions of each key) and the time they are fresh at."""
    folder = DATA_DIR / f"views-{entities}-seed{seed}"
    marker = folder / "as_of.txt"
    if marker.exists():
        return folder, datetime.fromisoformat(marker.read_text().strip())
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # recent enough that neither tool sees the values as stale while the benchmark runs
    as_of = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    base = np.datetime64(as_of - timedelta(days=2), "us")
    for view, width in VIEWS.items():
        keys = np.tile(np.arange(entities, dtype=np.int64), 2)
        offsets = rng.integers(0, 12 * 3600 * 10**6, 2 * entities)
        offsets[entities:] += 24 * 3600 * 10**6  # the second version is always newer
        ts = base + offsets.astype("timedelta64[us]")
        values = rng.standard_normal((width, 2 * entities)).round(6)
        table = pa.table(
            {
                "entity_id": keys,
                "event_timestamp": pa.array(ts, type=pa.timestamp("us")),
                "created": pa.array(ts, type=pa.timestamp("us")),
                **{name: values[i] for i, name in enumerate(feature_names(view))},
            }
        )
        pq.write_table(table, folder / f"{view}.parquet")
    marker.write_text(as_of.isoformat())
    return folder, as_of


def truth(folder: Path, keys: list[int]) -> dict[str, dict[str, float]]:
    """The newest values of ``keys``, feature name → value, straight from the files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = set(keys)
    result: dict[str, dict[str, float]] = {str(k): {} for k in keys}
    for view in VIEWS:
        table = pq.read_table(folder / f"{view}.parquet")
        table = table.filter(pc.is_in(table["entity_id"], value_set=_array(sorted(wanted))))
        newest: dict[int, tuple[Any, dict[str, float]]] = {}
        for row in table.to_pylist():
            key = row["entity_id"]
            if key not in newest or row["event_timestamp"] > newest[key][0]:
                newest[key] = (row["event_timestamp"], {n: row[n] for n in feature_names(view)})
        for key, (_, values) in newest.items():
            result[str(key)].update(values)
    return result


def _array(values: list[int]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.int64())


def call_keys(entities: int, seed: int, calls: int, batch: int) -> list[list[int]]:
    import numpy as np

    rng = np.random.default_rng(seed + batch)
    drawn = rng.integers(0, entities, (calls + WARMUP, batch))
    return [[int(k) for k in row] for row in drawn]
