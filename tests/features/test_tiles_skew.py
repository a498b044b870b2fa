"""`taxiway features skew` covers tiled views: the tile read at T is compared with the offline
value at T (so a check after the materialization is clean), and one tampered tile is skew."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import require_service

from taxiway.features.materialize import materialize
from taxiway.features.online import RedisStore, SqliteStore
from taxiway.features.online._codec import decode, dumps
from taxiway.features.skew import check_skew
from taxiway.features.tiles import TiledView, tile_table
from taxiway.spec import Project, load_spec_text

BASE = datetime(2025, 3, 1, tzinfo=UTC)
REDIS = "redis://127.0.0.1:6379/0"
SPEC = """
name: tileskew
sources:
  ev: {kind: file, path: events.parquet, timestamp: ts, available_after: 1h}
  people: {kind: file, path: people.parquet}
entities: {e: k}
features:
  recent:
    source: ev
    entity: e
    aggregate: {n: count(*), total: sum(v), mean: avg(v), spread: stddev(v), top: max(v)}
    windows: [1d, 7d]
    tiles: 1h
  profile: {source: people, entity: e, static: [group]}
"""
# after the materialization (BASE + 8d), mid-tile: the snapshot is older than T, the tiles are not
AT = BASE + timedelta(days=9, hours=5, minutes=17, microseconds=3)


def write_project(folder: Path) -> Project:
    rows = [
        {"k": k, "ts": (BASE + timedelta(hours=7 * i + k)).replace(tzinfo=None), "v": float(i % 9)}
        for k in range(1, 6)
        for i in range(30 + 3 * k)
    ]
    columns: list[tuple[str, pa.DataType]] = [
        ("k", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("v", pa.float64()),
    ]
    schema = pa.schema(columns)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "events.parquet")
    people = pa.table({"k": list(range(1, 6)), "group": ["a", "b", "a", "b", "a"]})
    pq.write_table(people, folder / "people.parquet")
    path = folder / "taxiway.yaml"
    path.write_text(SPEC)
    return Project(load_spec_text(SPEC, str(path), base_dir=folder), path, folder / ".state")


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteStore | RedisStore]:
    opened: SqliteStore | RedisStore
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
        opened = RedisStore(REDIS, f"tw-test:{uuid4().hex}", 2000)
    else:
        opened = SqliteStore(tmp_path / "online.sqlite")
    try:
        yield opened
    finally:
        opened.clear()
        opened.close()


def tamper(project: Project, store: SqliteStore | RedisStore, key: str) -> int:
    """Add one event to the count of a tile wholly inside key's 7-day window at AT (its state
    only: a read at AT merges that tile's state, not its events); return the tile's index."""
    view = TiledView.of(project.spec, "recent")
    at_us = (AT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    whole = view.range_at(at_us)
    tiles = tile_table(store)
    found = tiles.read("e", [key], [whole])
    states, _ = found[key]["recent"]
    inner = [t for t in sorted(states) if t not in whole.edges]
    tile = inner[len(inner) // 2]
    events = tiles.events("e", "recent", [(key, tile)])[(key, tile)]
    state: list[Any] = decode(states[tile])
    state[0] += 1
    assert tiles.put("e", "recent", [(key, tile, dumps(state), events)]) == 1
    return tile


def test_tiled_views_compare_the_tile_read_at_t_and_a_tampered_tile_is_skew(
    tmp_path: Path, store: SqliteStore | RedisStore
) -> None:
    project = write_project(tmp_path)
    materialize(project, store, as_of=BASE + timedelta(days=8))

    report = check_skew(project, store, as_of=AT, sample=100)
    assert report.entities == 5
    assert report.compared == 5 * (10 + 1)
    assert report.mismatches == []

    tamper(project, store, "3")
    report = check_skew(project, store, as_of=AT, sample=100)
    assert report.compared == 5 * 11
    # the 7-day count of key 3 (the 1-day window does not reach the tile; sums do not count
    # events); nothing else
    assert [(m.key, m.feature) for m in report.mismatches] == [("3", "recent__n_7d")]
    (wrong,) = report.mismatches
    assert wrong.online == wrong.offline + 1
    assert (
        wrong.reason == "the tiles' value at T differs (rebuild them: `taxiway features compact`)"
    )
    assert json.dumps(report.as_dict())  # JSON-ready, as `--json` prints it


def test_a_key_with_no_tile_in_range_and_no_vector_is_reported(tmp_path: Path) -> None:
    project = write_project(tmp_path)
    store = SqliteStore(tmp_path / "online.sqlite")
    try:
        materialize(project, store, as_of=BASE + timedelta(days=8))
        tile_table(store).clear("e", "recent")
        store.clear("e")  # nothing online at all: every feature of every key is reported
        report = check_skew(project, store, as_of=AT, sample=100)
        tiled = [m for m in report.mismatches if m.feature.startswith("recent__")]
        assert len(tiled) == 5 * 10
        assert all("no tile in range" in m.reason and m.online is None for m in tiled)
    finally:
        store.close()
