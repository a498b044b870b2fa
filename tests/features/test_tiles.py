"""Tiled views: the online tile read at any time equals the offline point-in-time value.

The offline value is pit.py's SQL (``compute_view``, what training sets run) over a spine of
random times; the online value is ``lookup`` over tiles written by ``compact`` from the same
staged source, in SQLite and in a real Redis.
"""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import uuid4

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import require_service

from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.errors import SpecError
from taxiway.features.lookup import lookup, lookup_values
from taxiway.features.materialize import materialize
from taxiway.features.online import RedisStore, SqliteStore
from taxiway.features.pit import compute_view
from taxiway.features.tiles import (
    TiledView,
    apply_events,
    apply_grouped,
    events_of,
    group_events,
    read_tiled,
)
from taxiway.features.tiles_compact import compact
from taxiway.spec import Project, load_spec_text

BASE = datetime(2025, 1, 1)
FUNCTIONS = ["count(*)", "count(v)", "sum(v)", "avg(v)", "min(v)", "max(v)", "stddev(v)"]
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
    return str(request.param)


def open_store(kind: str, folder: Path) -> SqliteStore | RedisStore:
    if kind == "sqlite":
        return SqliteStore(folder / "online.sqlite")
    return RedisStore(REDIS, f"tw-test:{uuid4().hex}", 2000)


def close_store(store: SqliteStore | RedisStore) -> None:
    store.clear()
    store.close()


def write_project(
    folder: Path, rows: list[dict[str, Any]], *, aa_h: int, tiles: str, windows: list[str]
) -> Project:
    columns: list[tuple[str, pa.DataType]] = [
        ("k", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("v", pa.float64()),
    ]
    schema = pa.schema(columns)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "events.parquet")
    aggregates = ", ".join(f"f{i}: {f}" for i, f in enumerate(FUNCTIONS))
    text = f"""
name: tiles
sources:
  ev: {{kind: file, path: events.parquet, timestamp: ts, available_after: {aa_h}h}}
entities: {{e: k}}
features:
  agg: {{source: ev, entity: e, aggregate: {{{aggregates}}}, windows: [{", ".join(windows)}], tiles: {tiles}}}
"""
    path = folder / "taxiway.yaml"
    path.write_text(text)
    return Project(load_spec_text(text, str(path), base_dir=folder), path, folder / ".state")


def offline(
    project: Project, probes: list[tuple[int, datetime]]
) -> dict[tuple[int, datetime], dict[str, Any]]:
    """pit.py's values for each (key, time)."""
    con = connect()
    try:
        staged = stage_sources(project, con, ["ev"], run_id=uuid4().hex, keep_quarantine=False)
        con.execute("CREATE TABLE spine (__sid BIGINT, k BIGINT, __t TIMESTAMP)")
        con.executemany(
            "INSERT INTO spine VALUES (?, ?, ?)",
            [(i, k, t) for i, (k, t) in enumerate(probes)],
        )
        columns = compute_view(con, project.spec, "agg", staged["ev"].view, "spine", "out")
        names = [c.name for c in columns]
        result = con.execute(f"SELECT __sid, {', '.join(names)} FROM out ORDER BY __sid").fetchall()
    finally:
        con.close()
    return {probes[row[0]]: dict(zip(names, row[1:], strict=True)) for row in result}


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


events = st.lists(
    st.fixed_dictionaries(
        {
            "k": st.integers(1, 3),
            # whole hours often, so events land on tile and window edges
            "minute": st.one_of(
                st.integers(0, 24 * 6).map(lambda h: h * 60), st.integers(0, 60 * 24 * 6)
            ),
            "v": st.one_of(st.none(), st.integers(-5, 5).map(float), st.floats(-100, 100)),
        }
    ),
    min_size=1,
    max_size=30,
)
# whole hours and arbitrary microseconds, before, inside and after the events
times = st.one_of(
    st.integers(-24, 24 * 9).map(lambda h: BASE + timedelta(hours=h)),
    st.integers(-(10**11), 9 * 24 * 3600 * 10**6).map(lambda us: BASE + timedelta(microseconds=us)),
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    tile_h = draw(st.sampled_from([1, 6]))
    aa_h = draw(st.sampled_from([0, 1, 5, 30]))
    windows = [w for w in (6, 12, 24, 48, 96) if w > aa_h]
    return {
        "events": draw(events),
        "tile_h": tile_h,
        "aa_h": aa_h,
        "windows_h": draw(st.lists(st.sampled_from(windows), min_size=1, max_size=3, unique=True)),
        "times": draw(st.lists(times, min_size=1, max_size=6)),
    }


def assert_reads_equal_offline(
    project: Project,
    store: SqliteStore | RedisStore,
    expected: dict[tuple[int, datetime], dict[str, Any]],
    keys: list[int],
    times: list[datetime],
) -> None:
    for t in times:
        found = lookup(project.spec, store, "e", [str(k) for k in keys], now=t.replace(tzinfo=UTC))
        for k, result in zip(keys, found, strict=True):
            want = expected[(k, t)]
            got = {n: v.value for n, v in result.features.items()}
            assert got.keys() == want.keys()
            if result.features[next(iter(want))].status == "missing":
                # no tile in range and no snapshot: only a window with nothing in it
                got = {n: 0 if "f0" in n or "f1" in n or "f2" in n else None for n in got}
            for feature, value in want.items():
                assert same(got[feature], value), (k, t, feature, got[feature], value)


def scenario_project(folder: Path, s: dict[str, Any]) -> tuple[Project, list[dict[str, Any]]]:
    rows = [
        {"k": e["k"], "ts": BASE + timedelta(minutes=e["minute"]), "v": e["v"]} for e in s["events"]
    ]
    project = write_project(
        folder,
        rows,
        aa_h=s["aa_h"],
        tiles=f"{s['tile_h']}h",
        windows=[f"{w}h" for w in s["windows_h"]],
    )
    return project, rows


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(s=scenarios())
def test_tile_reads_equal_the_offline_values_at_any_time(
    store_kind: str, s: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        project, rows = scenario_project(folder, s)
        keys = sorted({r["k"] for r in rows})
        expected = offline(project, [(k, t) for t in s["times"] for k in keys])
        store = open_store(store_kind, folder)
        try:
            compact(project, store)
            assert_reads_equal_offline(project, store, expected, keys, s["times"])
        finally:
            close_store(store)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    s=scenarios(),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 30), min_size=1, max_size=8),
)
def test_tiles_added_batch_by_batch_read_as_the_offline_values(
    store_kind: str, s: dict[str, Any], order: Any, cuts: list[int]
) -> None:
    """The stream's path: the events come in any order, in batches of any size, each added
    by apply_events to the tiles' stored state and events (not rebuilt from the history)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        project, rows = scenario_project(folder, s)
        keys = sorted({r["k"] for r in rows})
        expected = offline(project, [(k, t) for t in s["times"] for k in keys])
        arrived = list(rows)
        order.shuffle(arrived)
        bounds = sorted({0, len(arrived), *(c for c in cuts if c < len(arrived))})
        view = TiledView.of(project.spec, "agg")
        columns: list[tuple[str, pa.DataType]] = [
            ("k", pa.int64()),
            ("ts", pa.timestamp("us")),
            ("v", pa.float64()),
        ]
        schema = pa.schema(columns)
        store = open_store(store_kind, folder)
        try:
            for lo, hi in pairwise(bounds):
                batch = pa.Table.from_pylist(arrived[lo:hi], schema=schema)
                assert apply_events(store, view, batch) == hi - lo
            assert_reads_equal_offline(project, store, expected, keys, s["times"])
        finally:
            close_store(store)


def decay_project(folder: Path) -> Project:
    rows = [{"k": 1, "ts": BASE + timedelta(days=d, hours=3), "v": float(d)} for d in range(10)]
    return write_project(folder, rows, aa_h=1, tiles="1d", windows=["30d"])


def test_a_30_day_count_falls_with_no_new_events(tmp_path: Path, store_kind: str) -> None:
    project = decay_project(tmp_path)
    store = open_store(store_kind, tmp_path)
    try:
        materialize(project, store, as_of=(BASE + timedelta(days=10)).replace(tzinfo=UTC))
        counts = []
        for day in (10, 29, 30, 33, 36, 39):
            at = (BASE + timedelta(days=day, hours=4)).replace(tzinfo=UTC)
            counts.append(lookup_values(project.spec, store, "e", "1", now=at)["agg__f0_30d"])
        # events on days 0..9 at 03:00 (known at 04:00) leave the 30-day window 30 days on
        assert counts == [10, 10, 9, 6, 3, 0]
        gone = lookup(
            project.spec, store, "e", ["1"], now=(BASE + timedelta(days=41)).replace(tzinfo=UTC)
        )
        assert gone[0].features["agg__f0_30d"].status == "present"
        assert gone[0].features["agg__f2_30d"].value == 0  # sum of nothing is 0
        assert gone[0].features["agg__f3_30d"].value is None
    finally:
        close_store(store)


def test_applied_events_are_read_at_once_and_counted_per_application(
    tmp_path: Path, store_kind: str
) -> None:
    project = decay_project(tmp_path)
    store = open_store(store_kind, tmp_path)
    try:
        compact(project, store)
        view = TiledView.of(project.spec, "agg")
        at = BASE + timedelta(days=10, hours=5)
        fresh = pa.table(
            {"k": [1, 2], "ts": pa.array([at, at], pa.timestamp("us")), "v": [100.0, None]}
        )
        before = lookup_values(
            project.spec, store, "e", "1", now=at.replace(tzinfo=UTC) + timedelta(hours=1)
        )
        assert apply_events(store, view, fresh) == 2
        # known an hour after it happened: not yet at `at`, counted from at + 1h on
        now = at.replace(tzinfo=UTC)
        assert lookup_values(project.spec, store, "e", "1", now=now)["agg__f0_30d"] == 10
        later = lookup_values(project.spec, store, "e", "1", now=now + timedelta(hours=1))
        assert later["agg__f0_30d"] == before["agg__f0_30d"] + 1
        assert later["agg__f5_30d"] == 100.0  # max
        new = lookup(project.spec, store, "e", ["2"], now=now + timedelta(hours=1))[0]
        assert new.features["agg__f0_30d"].value == 1  # an entity seen only by the stream
        assert new.features["agg__f2_30d"].value is None  # events, but no value to sum
        apply_events(store, view, fresh)  # not idempotent: the caller de-duplicates
        again = lookup_values(project.spec, store, "e", "1", now=now + timedelta(hours=1))
        assert again["agg__f0_30d"] == later["agg__f0_30d"] + 1
    finally:
        close_store(store)


def test_an_untiled_key_is_missing_and_untiled_views_are_unchanged(tmp_path: Path) -> None:
    project = decay_project(tmp_path)
    store = SqliteStore(tmp_path / "online.sqlite")
    try:
        compact(project, store)
        result = lookup(project.spec, store, "e", ["404"], now=datetime(2025, 1, 5, tzinfo=UTC))
        assert result[0].features["agg__f0_30d"].status == "missing"
    finally:
        store.close()


SPEC = """
name: demo
sources: {{orders: {{kind: file, path: o.parquet, timestamp: at}}}}
entities: {{customer: customer_id}}
features:
  stats:
    source: orders
    entity: customer
    aggregate: {{n: count(*), u: {agg}}}
    windows: [7d, {window}]
    tiles: {tiles}
"""


@pytest.mark.parametrize(
    ("agg", "window", "tiles", "message"),
    [
        (
            "sum(x)",
            "36h",
            "1d",
            "taxiway.yaml:11:5: features.stats.tiles: tiles: 1d does not divide the window(s) 1d12h",
        ),
        ("count_distinct(x)", "30d", "1d", "count_distinct (u) cannot be kept in tiles exactly"),
        ("sum(x)", "30d", "0h", "features.stats.tiles"),
    ],
)
def test_spec_errors_name_the_line_and_the_fix(
    agg: str, window: str, tiles: str, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        load_spec_text(SPEC.format(agg=agg, window=window, tiles=tiles))
    assert message in str(error.value)


def test_a_view_without_tiles_is_as_before() -> None:
    spec = load_spec_text(SPEC.format(agg="sum(x)", window="36h", tiles="1h"))
    assert spec.features["stats"].tiles == timedelta(hours=1)  # type: ignore[union-attr]
    plain = load_spec_text(
        SPEC.replace("    tiles: {tiles}\n", "").format(agg="count_distinct(x)", window="36h")
    )
    assert plain.features["stats"].tiles is None  # type: ignore[union-attr]


def test_a_tile_read_without_edge_tiles_reads_the_states(store_kind: str, tmp_path: Path) -> None:
    """A range whose window starts and ends on tile edges asks no events (Redis: no HMGET with
    no field, which is an error there)."""
    from taxiway.features.online.base import TileRange

    store = open_store(store_kind, tmp_path)
    try:
        tiles = store.tiles
        assert tiles is not None
        tiles.put("e", "agg", [("1", 5, b'{"n": 1}', b"[]"), ("1", 6, b'{"n": 2}', b"[]")])
        found = tiles.read("e", ["1"], [TileRange("agg", 5, 6, ())])
        assert found["1"]["agg"][0] == {5: b'{"n": 1}', 6: b'{"n": 2}'}
        assert found["1"]["agg"][1] == {}
    finally:
        close_store(store)


KEY_VIEW = TiledView("kv", "e", ("a", "b"), "ts", 5, 1_000, ("x",), (True,), (True,), ())
KEY_PARTS = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=4))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(-(2**40), 2**40)),
            st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False)),
        ),
        max_size=30,
    ),
    a=st.sampled_from(["int", "text", "float"]),
)
def test_events_of_keys_and_values_are_each_rows_own(
    rows: list[tuple[int | None, Any]], a: str
) -> None:
    """The columnar events_of gives, row by row, what the rule says: the key columns' text
    joined by `|` (`str` of each value, ints and text as Python writes them), rows with a null
    key part or time skipped, the known time ts + available_after, inputs as stored."""
    n = len(rows)
    firsts: list[Any] = [
        None if i % 7 == 3 else (i * 37 if a != "text" else f"c{i}") for i in range(n)
    ]
    if a == "float":
        firsts = [None if v is None else v + 0.5 for v in firsts]
    seconds = [None if i % 5 == 4 else f"s{i % 3}" for i in range(n)]
    values = [x for _, x in rows]
    kind = pa.bool_() if any(isinstance(v, bool) for v in values) else pa.float64()
    table = pa.table(
        {
            "a": pa.array(firsts),
            "b": pa.array(seconds, pa.string()),
            "ts": pa.array([t for t, _ in rows], pa.int64()).cast(pa.timestamp("us")),
            "x": pa.array(
                [v if (kind == pa.bool_()) == isinstance(v, bool) else None for v in values],
                kind,
            ),
        }
    )
    expected = [
        (f"{k}|{s}", [t + 5, x])
        for k, s, t, x in zip(firsts, seconds, table.column("ts").cast(pa.int64()).to_pylist(),
                              table.column("x").to_pylist(), strict=True)
        if k is not None and s is not None and t is not None
    ]  # fmt: skip
    assert list(events_of(KEY_VIEW, table)) == expected


def test_events_of_writes_decimals_and_times_as_materialization_stores_them() -> None:
    view = TiledView("v", "e", ("k",), "ts", 0, 10, ("d", "t"), (True, False), (True, True), ())
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    table = pa.table(
        {
            "k": pa.array([True, None]),
            "ts": pa.array([moment, moment]),
            "d": pa.array([Decimal("1.25"), None], pa.decimal128(5, 2)),
            "t": pa.array([moment, moment]),
        }
    )
    us = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert list(events_of(view, table)) == [("True", [us, 1.25, moment.isoformat()])]


def test_apply_grouped_with_the_stored_tiles_read_equals_apply_events(tmp_path: Path) -> None:
    """The stream consumer reads the tiles' states and events once (the journal's pre-images)
    and hands them over: the tiles come out as apply_events writes them."""
    view = TiledView("v", "e", ("k",), "ts", 0, 1_000, ("x",), (True,), (True,),
                     (("v__n", "count", -1, 3_000), ("v__s", "sum", 0, 3_000)))  # fmt: skip
    first = pa.table({"k": [1, 2, 1], "ts": pa.array([10, 1_500, 20], pa.timestamp("us")),
                      "x": [1.0, 2.0, None]})  # fmt: skip
    second = pa.table({"k": [1, 1, 3], "ts": pa.array([5, 2_500, 7], pa.timestamp("us")),
                       "x": [4.0, 8.0, 16.0]})  # fmt: skip
    one, two = SqliteStore(tmp_path / "one.sqlite"), SqliteStore(tmp_path / "two.sqlite")
    try:
        for table in (first, second):
            assert apply_events(one, view, table) == 3
            grouped = group_events(view, table)
            stored = two.tiles.stored("e", "v", sorted(grouped))
            assert apply_grouped(two, view, grouped, stored=stored) == 3
        pairs = [(k, t) for k in ("1", "2", "3") for t in range(3)]
        assert one.tiles.events("e", "v", pairs) == two.tiles.events("e", "v", pairs)
        assert sorted(one.tiles.events("e", "v", pairs)) == [("1", 0), ("1", 2), ("2", 1), ("3", 0)]
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=2_999)
        assert read_tiled(one, [view], ["1"], at) == read_tiled(two, [view], ["1"], at)
        assert read_tiled(two, [view], ["1"], at)["1"]["v"] == {"v__n": 4, "v__s": 13.0}
    finally:
        one.close()
        two.close()
