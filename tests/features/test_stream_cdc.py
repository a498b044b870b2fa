"""`taxiway features stream` capturing a real PostgreSQL table (logical replication, pgoutput):
the snapshot and every insert, update and delete reach the online store and the Delta history
once, across a kill -9 of the consumer at each step and a PostgreSQL restart; a table without a
key is refused with the fix; a slot's lag is reported."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import require, require_service

from taxiway.data.cdc.postgres import PostgresCdc
from taxiway.data.history import is_history, read_history
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.errors import SourceError
from taxiway.features.online import RedisStore, SqliteStore
from taxiway.features.online.base import OnlineStore
from taxiway.features.pit import compute_view
from taxiway.features.stream_cdc import CdcApplier, CdcTotals
from taxiway.features.stream_cdc_state import CdcState
from taxiway.features.tiles import TiledView, read_tiled, window_values
from taxiway.spec import Project, load_spec_text
from taxiway.spec.models import PostgresSource

pytestmark = pytest.mark.postgres

psycopg = require("psycopg", reason="psycopg is the postgres extra")
require("psycopg2", reason="psycopg2-binary is the postgres extra (CDC)")
require("nats", reason="nats-py is the stream extra")

BASE = datetime(2026, 3, 1, tzinfo=UTC)
VIEWS = """
entities: {e: k}
features:
  agg: {source: ev, entity: e, aggregate: {n: count(*), total: sum(v), top: max(v)}, windows: [30d], tiles: 1d}
  last: {source: ev, entity: e, latest: [v, note]}
"""


@dataclass
class Setup:
    folder: Path
    project: Project
    url: str
    table: str
    slot: str


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str) -> Iterator[Setup]:
    with fresh(tmp_path, postgres_url) as made:
        yield made


@contextlib.contextmanager
def fresh(tmp_path: Path, postgres_url: str) -> Iterator[Setup]:
    """A new table, slot and project folder (dropped after)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:10]
    table, slot = f"cdc_{tag}", f"tw_{tag}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, k int NOT NULL, ts timestamptz NOT NULL, "
            "v double precision, note text)"
        )
    source = (
        f"ev: {{kind: postgres, url: '{postgres_url}', table: public.{table}, timestamp: ts, "
        f"cdc: true, history: history, slot: {slot}}}"
    )
    text = f"name: cdc\nsources:\n  {source}\n{VIEWS}"
    path = tmp_path / "taxiway.yaml"
    path.write_text(text)
    project = Project(load_spec_text(text, str(path), base_dir=tmp_path), path, tmp_path / ".st")
    try:
        yield Setup(tmp_path, project, postgres_url, table, slot)
    finally:
        drop(postgres_url, slot, table)


def drop(url: str, slot: str, table: str) -> None:
    """Drop the test's slot (ending a consumer still attached), publication and table."""
    for _ in range(50):
        with psycopg.connect(url, autocommit=True) as con:
            found = con.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if found is None:
                break
            if found[0] is not None:
                con.execute("SELECT pg_terminate_backend(%s)", (found[0],))
                time.sleep(0.1)
                continue
            con.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            break
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP PUBLICATION IF EXISTS "{slot}"')
        con.execute(f"DROP TABLE IF EXISTS {table}")


def row(i: int, seed: int = 0) -> tuple[Any, ...]:
    j = i + seed
    value = None if j % 5 == 0 else float(j % 11)
    return (i, j % 3, BASE + timedelta(minutes=97 * j), value, f"n{j}")


def execute(s: Setup, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run ``statements`` in ONE transaction."""
    with psycopg.connect(s.url) as con:
        for sql, args in statements:
            con.execute(sql.replace("{t}", s.table), args)


def insert(s: Setup, ids: range, seed: int = 0) -> None:
    execute(s, [("INSERT INTO {t} VALUES (%s, %s, %s, %s, %s)", row(i, seed)) for i in ids])


def table_rows(s: Setup) -> dict[str, dict[str, Any]]:
    """The table's rows as the CDC state keeps them (key → text values)."""
    with psycopg.connect(s.url, options="-c TimeZone=UTC -c DateStyle=ISO") as con:
        found = con.execute(
            f"SELECT id::text, k::text, ts::text, v::text, note FROM {s.table}"
        ).fetchall()
    return {
        orjson.dumps([r[0]]).decode(): dict(zip(("id", "k", "ts", "v", "note"), r, strict=True))
        for r in found
    }


def state_rows(s: Setup) -> dict[str, dict[str, Any]]:
    path = s.project.state_dir / "streams.sqlite"
    if not path.exists():
        return {}
    con = sqlite3.connect(path)
    try:
        found = con.execute("SELECT pk, row FROM cdc_rows WHERE source = 'ev'").fetchall()
        dirty = con.execute("SELECT count(*) FROM cdc_dirty").fetchone()[0]
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    if dirty:  # the batch is not in the online store yet
        return {}
    return {str(pk): orjson.loads(r) for pk, r in found}


def position(s: Setup) -> int | None:
    path = s.project.state_dir / "streams.sqlite"
    if not path.exists():
        return None
    con = sqlite3.connect(path)
    try:
        found = con.execute("SELECT lsn FROM cdc_position WHERE source = 'ev'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    return None if found is None else int(found[0])


def capture_until(
    s: Setup,
    done: Callable[[], bool],
    *,
    during: Callable[[], None] | None = None,
    timeout: float = 30,
    progress_s: float = 10.0,
    online: OnlineStore | None = None,
) -> Any:
    """Run the consumer in-process (``during`` runs in a thread once it started) until
    ``done()`` holds, then stop it; return its totals. ``online``: the store to write (kept
    open; a SQLite store in the state folder when None)."""
    from taxiway.features.stream import run_streams

    async def main() -> Any:
        stop = asyncio.Event()
        store = online or SqliteStore(s.project.state_dir / "online.sqlite")

        async def watch() -> None:
            if during is not None:
                while position(s) is None:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(during)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not done():
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            stop.set()

        try:
            watcher = asyncio.create_task(watch())
            totals = await run_streams(
                s.project.spec, store, s.project.state_dir, stop=stop, progress_s=progress_s
            )
            await watcher
            return totals["ev"]
        finally:
            if online is None:
                store.close()

    return asyncio.run(main())


def caught_up(s: Setup) -> Callable[[], bool]:
    return lambda: position(s) is not None and state_rows(s) == table_rows(s)


def caught_up_by_value(s: Setup) -> Callable[[], bool]:
    """As ``caught_up``, for a table keyed by every column (REPLICA IDENTITY FULL): the state's
    keys are whole rows, so only the rows themselves can be compared."""

    def rows(found: dict[str, dict[str, Any]]) -> list[str]:
        return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in found.values())

    return lambda: position(s) is not None and rows(state_rows(s)) == rows(table_rows(s))


def offline(
    s: Setup, probes: list[tuple[int, datetime]], view: str = "agg"
) -> list[dict[str, Any]]:
    """The training path's values of ``view`` (pit.py over the table itself)."""
    con = connect()
    try:
        staged = stage_sources(
            s.project, con, ["ev"], run_id=uuid.uuid4().hex, keep_quarantine=False
        )
        con.execute("CREATE TABLE spine (__sid BIGINT, k BIGINT, __t TIMESTAMP)")
        con.executemany(
            "INSERT INTO spine VALUES (?, ?, ?)",
            [(i, k, t.replace(tzinfo=None)) for i, (k, t) in enumerate(probes)],
        )
        columns = compute_view(con, s.project.spec, view, staged["ev"].view, "spine", "out")
        names = [c.name for c in columns]
        found = con.execute(f"SELECT {', '.join(names)} FROM out ORDER BY __sid").fetchall()
    finally:
        con.close()
    return [dict(zip(names, r, strict=True)) for r in found]


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def assert_store_equals_table(s: Setup, online: OnlineStore | None = None) -> None:
    """The tiles equal the offline computation over the table; the latest values equal each
    key's newest row; the history replayed in LSN order equals the table."""
    store = online or SqliteStore(s.project.state_dir / "online.sqlite")
    try:
        tiled = TiledView.of(s.project.spec, "agg")
        probes = [(k, BASE + timedelta(hours=h)) for k in range(3) for h in range(0, 24 * 12, 5)]
        for (k, at), want in zip(probes, offline(s, probes), strict=True):
            got = read_tiled(store, [tiled], [str(k)], at)[str(k)]["agg"]
            if got is None:  # no tile in range: a lookup serves the empty windows
                got = window_values(tiled, {}, {}, at_us=int(at.timestamp() * 1e6))
            for name, value in want.items():
                assert same(got.get(name), value), (k, at, name, got, want)
        rows = table_rows(s)
        stored = store.read("e", ["0", "1", "2"])
        for key in ("0", "1", "2"):
            mine = [r for r in rows.values() if r["k"] == key]
            values = {v.view: v.values for v in stored.get(key, [])}.get("last")
            if not mine:
                assert values is None or values == {"last__v": None, "last__note": None}
                continue
            newest = max(mine, key=lambda r: r["ts"])
            assert values is not None
            assert values["last__note"] == newest["note"]
            assert same(values["last__v"], None if newest["v"] is None else float(newest["v"]))
    finally:
        if online is None:
            store.close()
    history = read_history(s.folder / "history").to_pylist()
    replayed: dict[int, Any] = {}
    for change in sorted(history, key=lambda r: r["_lsn"]):  # stable: order within a batch
        if change["_op"] == "delete":
            replayed.pop(change["id"], None)
        else:
            replayed[change["id"]] = change["note"]
    assert replayed == {int(r["id"]): r["note"] for r in rows.values()}


def history_ops(s: Setup) -> dict[str, int]:
    folder = s.folder / "history"
    if not is_history(folder):
        return {}
    counts: dict[str, int] = {}
    for op in read_history(folder).column("_op").to_pylist():
        counts[str(op)] = counts.get(str(op), 0) + 1
    return counts


def changes(s: Setup) -> None:
    """Inserts, updates (one moving a row to another key) and deletes, in 4 transactions."""
    insert(s, range(30, 45))
    execute(
        s,
        [
            ("UPDATE {t} SET v = v + 100, note = 'upd' WHERE id %% 4 = 0", ()),
            ("UPDATE {t} SET k = (k + 1) %% 3 WHERE id = 7", ()),
        ],
    )
    execute(s, [("DELETE FROM {t} WHERE id %% 7 = 3", ())])
    execute(
        s,
        [
            ("INSERT INTO {t} VALUES (%s, %s, %s, %s, %s)", row(100)),
            ("UPDATE {t} SET note = 'twice' WHERE id = 100", ()),
            ("DELETE FROM {t} WHERE id = 31", ()),
        ],
    )


def test_snapshot_then_inserts_updates_deletes_reach_the_store_and_history(setup: Setup) -> None:
    insert(setup, range(30))
    totals = capture_until(setup, caught_up(setup), during=lambda: changes(setup))
    assert totals.snapshot_rows == 30
    ops = history_ops(setup)
    assert (ops["snapshot"], ops["insert"]) == (30, 16)
    assert ops["delete"] >= 5
    assert_store_equals_table(setup)


def assert_latest_is_offline(s: Setup, store: SqliteStore, at: datetime) -> None:
    """Skew: each key's online latest value equals the offline point-in-time value at ``at``."""
    stored = store.read("e", ["0", "1", "2"])
    for k, want in enumerate(offline(s, [(k, at) for k in range(3)], "last")):
        got = {v.view: v.values for v in stored.get(str(k), [])}.get("last") or {}
        for name, value in want.items():
            assert same(got.get(name), value), (k, at, name, got, want)


def test_latest_values_wait_for_available_after_as_training_does(setup: Setup) -> None:
    """A row is readable from its timestamp + available_after (as training reads it): the
    online value at T equals the offline point-in-time value at T, at the snapshot, after
    changes, and as rows become known with time."""
    text = setup.project.spec_path.read_text().replace(
        "cdc: true,", "available_after: 1h, cdc: true,"
    )
    project = Project(
        load_spec_text(text, str(setup.project.spec_path), base_dir=setup.folder),
        setup.project.spec_path,
        setup.folder / ".st",
    )
    s = dataclasses.replace(setup, project=project)
    t0 = BASE + timedelta(days=3)
    ages = [200, 190, 180, 30, 20, 10]  # minutes before t0: ids 3-5 are known after t0
    rows = [(i, i % 3, t0 - timedelta(minutes=m), float(i), f"n{i}") for i, m in enumerate(ages)]
    execute(s, [("INSERT INTO {t} VALUES (%s, %s, %s, %s, %s)", r) for r in rows])
    now = [t0]
    declared = project.spec.sources["ev"]
    assert isinstance(declared, PostgresSource)
    cdc = PostgresCdc("ev", declared)
    state = CdcState(project.state_dir / "streams.sqlite")
    store = SqliteStore(project.state_dir / "online.sqlite")
    applier = CdcApplier(project.spec, "ev", store, state, cdc, clock=lambda: now[0])
    try:
        applier.prepare(CdcTotals())
        assert_latest_is_offline(s, store, t0)
        # k 0 gets a row known before t0 (the newest known); k 1 loses its only known row
        execute(
            s,
            [
                (
                    "INSERT INTO {t} VALUES (%s, %s, %s, %s, %s)",
                    (50, 0, t0 - timedelta(minutes=90), 50.0, "n50"),
                ),
                ("DELETE FROM {t} WHERE id = 1", ()),
            ],
        )
        applied = 0
        deadline = time.monotonic() + 20
        while applied < 2 and time.monotonic() < deadline:
            applied += applier.apply(cdc.poll(max_changes=100, wait_s=0.5))[0]
        assert applied == 2
        assert_latest_is_offline(s, store, t0)
        assert store.read("e", ["1"])["1"][0].values["last__note"] is None
        for later in (45, 55, 120):  # ids 3 and 4 known at +30 and +40 min, 5 at +50
            now[0] = t0 + timedelta(minutes=later)
            wait = applier.promote()
            assert (wait is None) == (later > 50)
            assert_latest_is_offline(s, store, now[0])
        assert store.read("e", ["2"])["2"][0].values["last__note"] == "n5"
    finally:
        cdc.close()
        state.close()
        store.close()


def apply_until(applier: CdcApplier, cdc: PostgresCdc, state: CdcState, pk: str) -> None:
    """Poll and apply until the row ``pk`` is stored (the transaction writing it is applied,
    and so is every one before it)."""
    deadline = time.monotonic() + 30
    while not state.rows("ev", [pk]):
        assert time.monotonic() < deadline, "the changes did not arrive"
        applier.apply(cdc.poll(max_changes=1_000, wait_s=0.5))


_IDS = st.integers(0, 15)
_FACTS = st.tuples(st.integers(0, 2), st.integers(0, 14), st.none() | st.integers(0, 9))
_OPS = st.one_of(
    st.tuples(st.just("insert"), _IDS, _FACTS),
    st.tuples(st.just("update"), _IDS, _FACTS),
    st.tuples(st.just("delete"), _IDS, _FACTS),
)


def _sql(op: str, i: int, facts: tuple[int, int, int | None]) -> tuple[str, tuple[Any, ...]]:
    k, day, v = facts
    # unique times per id: a latest value's newest row is never a tie
    ts = BASE + timedelta(minutes=day * 1000 + i)
    if op == "insert":
        sql = "INSERT INTO {t} VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
        return sql, (i, k, ts, v, f"i{i}.{day}")
    if op == "update":
        sql = "UPDATE {t} SET k = %s, ts = %s, v = %s, note = %s WHERE id = %s"
        return sql, (k, ts, v, f"u{i}.{day}", i)
    return "DELETE FROM {t} WHERE id = %s", (i,)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(st.tuples(_IDS, _FACTS), max_size=12),
    transactions=st.lists(st.lists(_OPS, min_size=1, max_size=8), min_size=1, max_size=5),
)
def test_random_inserts_updates_deletes_leave_the_store_equal_to_the_offline_values(
    tmp_path: Path,
    postgres_url: str,
    first: list[tuple[int, tuple[int, int, int | None]]],
    transactions: list[list[tuple[str, int, tuple[int, int, int | None]]]],
) -> None:
    """Any sequence of row changes (moves between keys and tiles, a row inserted, changed and
    deleted in one transaction, several changes of one tile or key in a batch): the tiles
    equal the offline point-in-time values, the latest values each key's newest row, and the
    history replays to the table."""
    with fresh(tmp_path / uuid.uuid4().hex[:8], postgres_url) as s:
        execute(s, [_sql("insert", i, facts) for i, facts in first] or [("SELECT 1", ())])
        declared = s.project.spec.sources["ev"]
        assert isinstance(declared, PostgresSource)
        cdc = PostgresCdc("ev", declared)
        state = CdcState(s.project.state_dir / "streams.sqlite")
        store = SqliteStore(s.project.state_dir / "online.sqlite")
        try:
            applier = CdcApplier(s.project.spec, "ev", store, state, cdc)
            applier.prepare(CdcTotals())  # the snapshot
            for ops in transactions:
                execute(s, [_sql(*op) for op in ops])
            marker = (1_000, 0, BASE + timedelta(minutes=999), 1.0, "end")  # no tie: ids < 999
            execute(s, [("INSERT INTO {t} VALUES (%s, %s, %s, %s, %s)", marker)])
            apply_until(applier, cdc, state, orjson.dumps(["1000"]).decode())
        finally:
            cdc.close()
            state.close()
            store.close()
        assert_store_equals_table(s)


@pytest.mark.redis
def test_cdc_into_the_redis_online_store_equals_the_table(setup: Setup) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    store = RedisStore("redis://127.0.0.1:6379/0", f"tw-test-cdc:{uuid.uuid4().hex}", 2_000)
    try:
        insert(setup, range(30))
        done = lambda: caught_up(setup)() and "0" in store.read("e", ["0"])  # noqa: E731
        totals = capture_until(setup, done, during=lambda: changes(setup), online=store)
        assert totals.snapshot_rows == 30
        assert_store_equals_table(setup, store)
    finally:
        store.clear()
        store.close()


def test_a_table_without_a_key_is_refused_with_the_fix(setup: Setup) -> None:
    from taxiway.features.stream import run_streams

    with psycopg.connect(setup.url, autocommit=True) as con:
        con.execute(f"ALTER TABLE {setup.table} DROP CONSTRAINT {setup.table}_pkey")
    store = SqliteStore(setup.project.state_dir / "online.sqlite")
    try:
        with pytest.raises(SourceError) as raised:
            asyncio.run(run_streams(setup.project.spec, store, setup.project.state_dir))
    finally:
        store.close()
    assert "no primary key" in str(raised.value)
    assert f"ALTER TABLE public.{setup.table} REPLICA IDENTITY FULL" in (raised.value.fix or "")
    with psycopg.connect(setup.url, autocommit=True) as con:
        con.execute(f"ALTER TABLE {setup.table} REPLICA IDENTITY FULL")
    insert(setup, range(5))
    capture_until(
        setup, caught_up_by_value(setup), during=lambda: insert(setup, range(5, 9)), timeout=20
    )
    assert_store_equals_table(setup)


def test_a_slot_behind_is_reported(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    from taxiway.data.cdc.postgres import PostgresCdc

    insert(setup, range(5))
    capture_until(setup, caught_up(setup))
    insert(setup, range(5, 400))  # while no consumer runs
    source = setup.project.spec.sources["ev"]
    lag = PostgresCdc("ev", source).lag()  # type: ignore[arg-type]
    assert lag is not None
    assert lag.slot == setup.slot
    assert lag.confirmed_lag_bytes > 0
    assert lag.retained_bytes >= lag.confirmed_lag_bytes
    assert not lag.active
    with caplog.at_level(logging.INFO, logger="taxiway.stream"):
        capture_until(setup, caught_up(setup), progress_s=0.2)
    assert any(f"slot {setup.slot} retains" in r.getMessage() for r in caplog.records)


def test_a_lost_slot_is_snapshotted_again_and_vanished_keys_are_nulled(setup: Setup) -> None:
    insert(setup, range(30))
    capture_until(setup, caught_up(setup))
    drop(setup.url, setup.slot, "no_such_table")  # the slot is gone (lost, or dropped)
    execute(setup, [("DELETE FROM {t} WHERE k = 2 OR id < 5", ())])
    totals = capture_until(setup, caught_up(setup))
    assert totals.snapshot_rows == len(table_rows(setup))
    assert history_ops(setup) == {"snapshot": totals.snapshot_rows}  # rewritten from it
    assert_store_equals_table(setup)  # key 2's latest values are null, its tiles empty


CRASHING = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from taxiway.data import history
    from taxiway.features import stream_cdc_state
    from taxiway.features.online import SqliteStore
    from taxiway.features.stream import run_streams
    from taxiway.spec import Project

    point, calls = sys.argv[2], {"n": 0}

    def dying(original):
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 2:  # the first batch after the snapshot
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapper

    if point == "after_history":  # appended to the history, position not stored
        history.HistoryWriter.append = dying(history.HistoryWriter.append)
    else:  # position stored, online values not written, nothing confirmed
        cls = stream_cdc_state.CdcState
        cls.apply = dying(cls.apply)
    project = Project.load(sys.argv[1], Path(sys.argv[3]))
    store = SqliteStore(project.state_dir / "online.sqlite")
    asyncio.run(run_streams(project.spec, store, project.state_dir))
    """
)


@pytest.mark.parametrize("point", ["after_history", "after_commit"])
def test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing(setup: Setup, point: str) -> None:
    insert(setup, range(20))
    script = setup.folder / "crash.py"
    script.write_text(CRASHING)
    spec, state = str(setup.project.spec_path), str(setup.project.state_dir)
    process = subprocess.Popen(
        [sys.executable, str(script), spec, point, state],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 30
        while position(setup) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first = position(setup)
        assert first is not None, process.stderr.read().decode()[-2000:] if process.stderr else ""
        changes(setup)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, err.decode()[-2000:]
    stored = position(setup)
    assert (
        (stored == first) if point == "after_history" else (stored is not None and stored > first)
    )
    totals = capture_until(
        setup, caught_up(setup), during=lambda: insert(setup, range(200, 210), seed=3)
    )
    assert totals.snapshot_rows == 0  # resumed, not snapshotted again
    if point == "after_commit":
        assert totals.recovered > 0  # the online values the crash left behind
        assert totals.skipped > 0  # stored, not confirmed: resent by the server and skipped
    ops = history_ops(setup)
    assert (ops["snapshot"], ops["insert"]) == (20, 16 + 10)
    assert_store_equals_table(setup)


@pytest.mark.slow
def test_a_postgresql_restart_mid_stream_loses_and_duplicates_nothing(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """Restarts the shared server (pg_ctlcluster, as root): run it rarely."""
    insert(setup, range(20))

    def restart_between_changes() -> None:
        insert(setup, range(20, 30))
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"],
            check=True,
            timeout=120,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                psycopg.connect(setup.url).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.5)
        changes(setup)

    # the consumer retries the lost connection and resumes from the position it stored
    with caplog.at_level(logging.WARNING, logger="taxiway.stream"):
        totals = capture_until(setup, caught_up(setup), during=restart_between_changes, timeout=90)
    assert any("retrying" in r.getMessage() for r in caplog.records)  # it saw the restart
    assert totals.snapshot_rows == 20
    ops = history_ops(setup)
    assert (ops["snapshot"], ops["insert"]) == (20, 10 + 16)
    assert_store_equals_table(setup)
