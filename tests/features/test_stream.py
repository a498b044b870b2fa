"""`taxiway features stream` against a real NATS JetStream: each event applied once to the
tiles and the history, across duplicates, a consumer reset and a kill -9 mid-batch; refused
events in quarantine with their reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import require, require_service

from taxiway.data.history import is_history, read_history
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.features.online import SqliteStore
from taxiway.features.pit import compute_view
from taxiway.features.tiles import TiledView, read_tiled
from taxiway.spec import Project, load_spec_text

nats = require("nats", reason="nats-py is the stream extra")

URL = "nats://127.0.0.1:4222"
BASE = datetime(2026, 3, 1, tzinfo=UTC)
CONTRACT = """
apiVersion: v3.1.0
schema:
  - name: ev
    properties:
      - {name: k, logicalType: integer, required: true}
      - {name: ts, logicalType: timestamp, required: true}
      - {name: v, logicalType: number, logicalTypeOptions: {minimum: 0}}
"""
VIEWS = """
entities: {e: k}
features:
  agg: {source: ev, entity: e, aggregate: {n: count(*), total: sum(v), mean: avg(v)}, windows: [30d], tiles: 1d}
  top: {source: ev, entity: e, aggregate: {hi: max(v), m: count(v)}, windows: [2d], tiles: 1h}
"""


@dataclass
class Setup:
    folder: Path
    project: Project
    subject: str
    stream: str


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    require_service("NATS", "127.0.0.1", 4222)
    tag = uuid.uuid4().hex[:10]
    subject, stream = f"tw.test.{tag}", f"TW_TEST_{tag}"
    (tmp_path / "ev.contract.yaml").write_text(CONTRACT)
    source = (
        f"ev: {{kind: nats, url: '{URL}', subject: {subject}, stream: {stream}, durable: tw, "
        "timestamp: ts, history: history, contract: ev.contract.yaml, batch: 7, ack_wait: 2s}"
    )
    text = f"name: streams\nsources:\n  {source}\n{VIEWS}"
    path = tmp_path / "taxiway.yaml"
    path.write_text(text)
    project = Project(load_spec_text(text, str(path), base_dir=tmp_path), path, tmp_path / ".st")
    yield Setup(tmp_path, project, subject, stream)
    asyncio.run(_delete_streams(stream))


async def _delete_streams(stream: str) -> None:
    client = await nats.connect(URL)
    try:
        js = client.jetstream()
        for name in (stream, f"{stream}_QUARANTINE"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
    finally:
        await client.close()


def events(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Events over 3 keys and 3 days, some without a value."""
    out = []
    for i in range(count):
        j = i + seed
        out.append(
            {
                "k": j % 3,
                "ts": (BASE + timedelta(minutes=97 * j)).isoformat(),
                "v": None if j % 5 == 0 else float(j % 11),
            }
        )
    return out


async def publish(
    subject: str, stream: str, bodies: Sequence[tuple[str | None, bytes]]
) -> list[Any]:
    client = await nats.connect(URL)
    try:
        js = client.jetstream()
        try:
            await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=stream, subjects=[subject])
        acks = []
        for msg_id, body in bodies:
            headers = {"Nats-Msg-Id": msg_id} if msg_id else None
            acks.append(await js.publish(subject, body, headers=headers))
        return acks
    finally:
        await client.close()


def publish_events(s: Setup, rows: list[dict[str, Any]], prefix: str = "e") -> None:
    bodies = [(f"{prefix}{i}", json.dumps(r).encode()) for i, r in enumerate(rows)]
    asyncio.run(publish(s.subject, s.stream, bodies))


def applied_ids(s: Setup) -> int:
    path = s.project.state_dir / "streams.sqlite"
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT count(*) FROM stream_applied").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def stream_until(s: Setup, applied: int, *, quarantined: int = 0, timeout: float = 20) -> Any:
    """Run the consumer in-process until the journal holds ``applied`` ids (then stop it)."""
    from taxiway.features.stream import run_streams

    async def main() -> Any:
        stop = asyncio.Event()
        store = SqliteStore(s.project.state_dir / "online.sqlite")

        async def watch() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if applied_ids(s) >= applied and await quarantine_count(s) >= quarantined:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # let a further (wrong) batch show itself
            stop.set()

        try:
            watcher = asyncio.create_task(watch())
            totals = await run_streams(s.project.spec, store, s.project.state_dir, stop=stop)
            await watcher
            return totals["ev"]
        finally:
            store.close()

    return asyncio.run(main())


async def quarantine_count(s: Setup) -> int:
    client = await nats.connect(URL)
    try:
        info = await client.jetstream().stream_info(f"{s.stream}_QUARANTINE")
        return int(info.state.messages)
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await client.close()


def offline(project: Project, view: str, probes: list[tuple[int, datetime]]) -> list[Any]:
    """The training path's values (pit.py over the history files) for each (key, time)."""
    con = connect()
    try:
        staged = stage_sources(project, con, ["ev"], run_id=uuid.uuid4().hex, keep_quarantine=False)
        con.execute("CREATE TABLE spine (__sid BIGINT, k BIGINT, __t TIMESTAMP)")
        con.executemany(
            "INSERT INTO spine VALUES (?, ?, ?)",
            [(i, k, t.replace(tzinfo=None)) for i, (k, t) in enumerate(probes)],
        )
        columns = compute_view(con, project.spec, view, staged["ev"].view, "spine", "out")
        names = [c.name for c in columns]
        rows = con.execute(f"SELECT {', '.join(names)} FROM out ORDER BY __sid").fetchall()
    finally:
        con.close()
    return [dict(zip(names, row, strict=True)) for row in rows]


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def assert_online_equals_offline(s: Setup) -> None:
    store = SqliteStore(s.project.state_dir / "online.sqlite")
    try:
        for view in ("agg", "top"):
            tiled = TiledView.of(s.project.spec, view)
            probes = [
                (k, BASE + timedelta(hours=h, minutes=m))
                for k in range(3)
                for h in range(0, 24 * 6, 7)
                for m in (0, 13)
            ]
            expected = offline(
                s.project, view, probes
            )  # the training path reads the nats source's history
            for (k, at), want in zip(probes, expected, strict=True):
                got = read_tiled(store, [tiled], [str(k)], at)[str(k)][view] or {}
                for name, value in want.items():
                    assert same(
                        got.get(name, 0 if name.endswith(("_n_30d", "_m_2d")) else None), value
                    ), (view, k, at, name, got, want)
    finally:
        store.close()


def history_rows(s: Setup) -> int:
    folder = s.folder / "history"
    return read_history(folder).num_rows if is_history(folder) else 0


def test_published_events_are_applied_once_and_online_equals_offline(setup: Setup) -> None:
    rows = events(40)
    publish_events(setup, rows)
    totals = stream_until(setup, 40)
    assert (totals.applied, totals.duplicates, totals.quarantined) == (40, 0, 0)
    assert history_rows(setup) == 40
    assert_online_equals_offline(setup)


def test_duplicates_are_applied_once(setup: Setup) -> None:
    rows = events(10)
    publish_events(setup, rows)
    # the same Nats-Msg-Id again: JetStream drops it inside its duplicate window
    acks = asyncio.run(publish(setup.subject, setup.stream, [("e3", json.dumps(rows[3]).encode())]))
    assert acks[0].duplicate
    stream_until(setup, 10)
    # a consumer reset (a new durable) re-reads the whole stream: the journal skips every event
    spec = setup.project.spec
    source = spec.sources["ev"].model_copy(update={"durable": "tw2"})
    setup.project = Project(
        spec.model_copy(update={"sources": {"ev": source}}),
        setup.project.spec_path,
        setup.project.state_dir,
    )
    again = stream_until(setup, 10, timeout=3)
    assert (again.applied, again.duplicates) == (0, 10)
    assert history_rows(setup) == 10
    assert_online_equals_offline(setup)


def test_refused_events_land_in_quarantine_with_their_reason(setup: Setup) -> None:
    good = events(3)
    bad = [
        ("b0", b"not json"),
        ("b1", json.dumps({"k": 1, "v": 2.0}).encode()),  # no timestamp
        ("b2", json.dumps({"k": 1, "ts": BASE.isoformat(), "v": "abc"}).encode()),
        ("b3", json.dumps({"k": 1, "ts": BASE.isoformat(), "v": -4}).encode()),
        (None, json.dumps(good[0]).encode()),  # no id
    ]
    publish_events(setup, good)
    asyncio.run(publish(setup.subject, setup.stream, bad))
    totals = stream_until(setup, 3, quarantined=5)
    assert (totals.applied, totals.quarantined) == (3, 5)

    async def read() -> list[tuple[bytes, str]]:
        client = await nats.connect(URL)
        try:
            js = client.jetstream()
            sub = await js.pull_subscribe(f"{setup.subject}.quarantine", durable="check")
            messages = await sub.fetch(5, timeout=2)
            return [(m.data, m.headers["Taxiway-Reason"]) for m in messages]
        finally:
            await client.close()

    found = asyncio.run(read())
    assert [body for body, _ in found] == [body for _, body in bad]
    reasons = [reason for _, reason in found]
    assert reasons[0].startswith("the body is not JSON")
    assert reasons[1] == "ts: the event has no `ts` (its timestamp)"
    assert reasons[2].startswith("v.type: v is not a valid number")
    assert reasons[3].startswith("v.minimum")
    assert reasons[4].startswith("no event id")
    assert history_rows(setup) == 3


CRASHING = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from taxiway.features import stream
    from taxiway.features.online import SqliteStore
    from taxiway.spec import Project

    kill_after = int(sys.argv[2])
    applied = 0
    original = stream.apply_grouped

    def apply_then_die(store, view, grouped, **options):
        global applied
        added = original(store, view, grouped, **options)
        if view.name == "agg":
            applied += added
        if applied >= kill_after:  # after agg's tiles, before top's
            os.kill(os.getpid(), signal.SIGKILL)
        return added

    stream.apply_grouped = apply_then_die
    stream.BACKLOG_EVENTS = 0  # batches of the source's `batch:` (7), even behind
    project = Project.load(sys.argv[1], Path(sys.argv[3]))
    store = SqliteStore(project.state_dir / "online.sqlite")
    asyncio.run(stream.run_streams(project.spec, store, project.state_dir))
    """
)


def test_a_consumer_killed_mid_batch_then_restarted_applies_each_event_once(
    setup: Setup,
) -> None:
    rows = events(60)
    publish_events(setup, rows)
    script = setup.folder / "crash.py"
    script.write_text(CRASHING)
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            str(setup.project.spec_path),
            "10",
            str(setup.project.state_dir),
        ],
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == -9, run.stderr.decode()[-2000:]
    # killed in the second batch (7 events each), between the first and the second view
    assert applied_ids(setup) == 7
    assert history_rows(setup) == 7
    totals = stream_until(setup, 60)
    assert totals.recovered == 1  # the journalled batch finished from the journal
    assert totals.applied == 53 - 7  # its 7 events, redelivered, are skipped as applied
    assert history_rows(setup) == 60
    assert_online_equals_offline(setup)


def test_sigterm_finishes_the_batch_and_exits_cleanly(setup: Setup) -> None:
    publish_events(setup, events(20))
    command = [
        str(Path(sys.executable).parent / "taxiway"),
        "features",
        "stream",
        "-f",
        str(setup.project.spec_path),
        "--state-dir",
        str(setup.project.state_dir),
        "--progress-every",
        "0.2",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while applied_ids(setup) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.decode()
    assert process.returncode == 0, text[-2000:]
    assert "ev: 20 events applied, 0 duplicates skipped, 0 quarantined; stopped cleanly" in text
    assert "lag 0" in text  # the progress line
    assert history_rows(setup) == 20


def test_a_fetch_returns_the_events_in_hand_and_takes_up_to_most_from_a_backlog(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caught up (the fetch waiting before the events come), the consumer takes what is there
    without waiting for a full batch (the wait for a first event is set to a minute, so a
    fetch that held out for 500 would time out); behind, it takes a full batch at once."""
    from taxiway.features import stream

    monkeypatch.setattr(stream, "FETCH_WAIT_S", 60.0)
    publish_events(setup, events(1), prefix="setup")  # creates the stream

    async def caught_up() -> list[int]:
        client = await nats.connect(URL)
        try:
            js = client.jetstream()
            sub = await js.pull_subscribe(setup.subject, durable="fetch", stream=setup.stream)
            [old] = await stream._fetch(sub, 500)
            await old.ack()
            waiting = asyncio.create_task(asyncio.wait_for(stream._fetch(sub, 500), timeout=30))
            await asyncio.sleep(0.5)  # the fetch waits for the next event
            for i in range(3):
                await js.publish(setup.subject, json.dumps(events(1)[0]).encode(),
                                 headers={"Nats-Msg-Id": f"late{i}"})  # fmt: skip
            got = await waiting
            while len(got) < 3:  # the ones the first fetch did not have in hand yet
                got += await asyncio.wait_for(stream._fetch(sub, 500), timeout=30)
            for message in got:
                await message.ack()
            return [m.metadata.sequence.stream for m in got]
        finally:
            await client.close()

    async def fetch(batch: int, most: int | None = None) -> list[int]:
        client = await nats.connect(URL)
        try:
            sub = await client.jetstream().pull_subscribe(
                setup.subject, durable="fetch", stream=setup.stream
            )
            messages = await asyncio.wait_for(stream._fetch(sub, batch, most=most), timeout=30)
            for message in messages:
                await message.ack()
            return [m.metadata.sequence.stream for m in messages]
        finally:
            await client.close()

    assert asyncio.run(caught_up()) == [2, 3, 4]
    publish_events(setup, events(40), prefix="b")
    assert asyncio.run(fetch(25)) == list(range(5, 30))
    assert asyncio.run(fetch(500)) == list(range(30, 45))
    # behind, a batch takes `most`, `batch` per fetch; it ends when a fetch comes back short
    publish_events(setup, events(40), prefix="c")
    assert asyncio.run(fetch(10, most=25)) == list(range(45, 70))
    assert asyncio.run(fetch(10, most=100)) == list(range(70, 85))


def test_a_batch_interrupted_after_its_tiles_is_undone_by_truncation(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal keeps a touched tile's state and its events' length, not its events: a batch
    that failed after its tiles' writes (before the history) is undone by cutting each tile's
    list back to that length, then applied again; online still equals offline."""
    from taxiway.errors import FeatureError
    from taxiway.features.stream import StreamApplier, StreamEvent, _truncated
    from taxiway.features.stream_journal import StreamJournal
    from taxiway.features.tiles import tile_table

    rows = events(21)

    def batch(first: int, end: int) -> list[StreamEvent]:
        return [
            StreamEvent(f"e{i}", json.dumps(rows[i]).encode(), i + 1) for i in range(first, end)
        ]

    def fail(table: Any, version: int, **_: Any) -> bool:
        raise OSError("the disk went away")  # after the tiles, before the history

    state = setup.project.state_dir
    state.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(state / "online.sqlite")
    journal = StreamJournal(state / "streams.sqlite")
    try:
        applier = StreamApplier(setup.project.spec, "ev", store, journal)
        assert applier.apply(batch(0, 7)).applied == 7
        monkeypatch.setattr(applier.writer, "append", fail)
        with pytest.raises(OSError, match="disk went away"):
            applier.apply(batch(7, 14))
        applier.close()
        pending = journal.pending("ev")
        assert pending is not None
        assert pending.batch == 2
        tiles = tile_table(store)
        grown = [(v, k, t, n) for v, _, k, t, _, n in pending.undo if n is not None]
        assert len(grown) == 3  # each key's day tile of `agg` held batch 1's events
        for view, key, tile, length in grown:
            now = tiles.stored("e", view, [(key, tile)])[(key, tile)][1]
            assert len(now) > length  # batch 2's events were appended after the journal's length
        again = StreamApplier(setup.project.spec, "ev", store, journal)
        assert again.recover()
        result = again.apply(batch(7, 21))
        assert (result.applied, result.duplicates) == (7, 7)
        again.close()
    finally:
        journal.close()
        store.close()
    assert history_rows(setup) == 21
    assert_online_equals_offline(setup)
    with pytest.raises(FeatureError, match="no longer starts with its events"):
        _truncated((b"", b"[[9]]"), 7, "agg")  # the tile was rewritten since: not undone blindly


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True), min_size=4, max_size=4),
    numbers=st.lists(st.integers(0, 2**63 - 1), min_size=5, max_size=5),
    form=st.sampled_from(["v1", "v2", "v2 without the token"]),
)
def test_the_stream_sequence_is_read_from_the_reply_as_nats_py_reads_it(
    names: list[str], numbers: list[int], form: str
) -> None:
    from nats.aio.msg import Msg

    from taxiway.features.stream import stream_sequence

    stream, consumer, domain, account = names
    delivered, sseq, cseq, stamp, pending = numbers
    tail = f"{stream}.{consumer}.{delivered}.{sseq}.{cseq}.{stamp % 2**60}.{pending}"
    reply = {
        "v1": f"$JS.ACK.{tail}",
        "v2": f"$JS.ACK.{domain}.{account}.{tail}.xyz",
        "v2 without the token": f"$JS.ACK.{domain}.{account}.{tail}",
    }[form]
    message = Msg(None, reply=reply)  # type: ignore[arg-type]
    assert stream_sequence(message) == message.metadata.sequence.stream == sseq
