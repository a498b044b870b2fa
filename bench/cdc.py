"""CDC from PostgreSQL: row changes applied per second, and the lag from a commit in PostgreSQL
to the value readable in the online store, beside a bare psycopg2 consumer (the floor).

    .venv/bin/python bench/cdc.py [--rows 20000] [--backlog 100000] [--rate 10000] [--seconds 20]

One table (id primary key, entity key, timestamp, value, note) with ``--rows`` rows, captured
by ``cdc: true`` into a tiled aggregate view (count, sum, max over 30 days, 1-day tiles) and a
latest view, on SQLite. Changes come in transactions of 100: 60% inserts, 30% updates of
random rows, 10% deletes.

- **drain**: ``--backlog`` changes are committed while no consumer runs, then each consumer
  applies them all: a bare psycopg2 loop (read each message, decode it with the same pgoutput
  decoder, confirm the position: no storage; Debezium, the usual peer, needs a JVM and Kafka,
  which this machine does not have) on its own slot, then ``taxiway features stream`` (one
  process, the same code the command runs) on the source's slot. Both read the same WAL.
- **lag**: a writer process commits ``--rate`` changes per second for ``--seconds`` while the
  taxiway consumer runs; for each transaction, the lag is the time the consumer's batch holding
  it was written to the online store (and the history, and its position stored) minus the
  transaction's commit time in PostgreSQL (both clocks are this machine's).

Needs PostgreSQL on 127.0.0.1:5432 with wal_level=logical (``--url`` to change). Everything the
run creates (table, slots, publication) is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg2
import psycopg2.extras

from taxiway.data.cdc.pgoutput import Change, Commit, Relations
from taxiway.features import stream_cdc
from taxiway.features.online import SqliteStore
from taxiway.features.stream import run_streams
from taxiway.spec import Project, load_spec_text

BASE = datetime(2026, 1, 1, tzinfo=UTC)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TXN = 100


def rows_sql(table: str) -> dict[str, str]:
    return {
        # the rows are made by the server: the writer's own CPU stays small
        "insert": f"INSERT INTO {table} SELECT g, g %% 1000, "
        "timestamptz '2026-01-01 00:00:00+00' + (g %% 40000) * interval '1 minute', "
        "(g %% 97)::float8, 'n' || g FROM generate_series(%s::int, %s::int) AS g",
        "update": f"UPDATE {table} SET v = v + 1, note = 'u' WHERE id = ANY(%s)",
        "delete": f"DELETE FROM {table} WHERE id = ANY(%s)",
    }


class Live:
    """The ids in the table, with O(1) sampling and removal."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = list(ids)
        self.where = {i: n for n, i in enumerate(self.ids)}

    def sample(self, rng: random.Random, count: int) -> list[int]:
        picked = {self.ids[rng.randrange(len(self.ids))] for _ in range(count)}
        return list(picked)

    def add(self, ids: list[int]) -> None:
        for i in ids:
            self.where[i] = len(self.ids)
            self.ids.append(i)

    def remove(self, ids: list[int]) -> None:
        for i in ids:
            n = self.where.pop(i)
            tail = self.ids.pop()
            if tail != i:
                self.ids[n] = tail
                self.where[tail] = n


def commit_changes(
    con: psycopg.Connection[Any], table: str, rng: random.Random, next_id: list[int], live: Live
) -> int:
    """One transaction of :data:`TXN` changes (60% inserts, 30% updates, 10% deletes);
    return how many rows it changed (a sampled id repeats now and then)."""
    sql = rows_sql(table)
    inserts = int(TXN * 0.6)
    ids = list(range(next_id[0], next_id[0] + inserts))
    next_id[0] += inserts
    touched = live.sample(rng, int(TXN * 0.4))
    cut = int(TXN * 0.1)
    gone, updates = touched[:cut], touched[cut:]
    with con.transaction():
        con.execute(sql["insert"], (ids[0], ids[-1]))
        con.execute(sql["update"], (updates,))
        con.execute(sql["delete"], (gone,))
    live.remove(gone)
    live.add(ids)
    return len(ids) + len(updates) + len(gone)


def writer(url: str, table: str, changes: int, rate: float, seed: int, first_id: int) -> int:
    """Commit ``changes`` changes at ``rate`` per second (0: as fast as possible); return the
    rows changed."""
    rng = random.Random(seed)
    with psycopg.connect(url) as con:
        live = Live([int(r[0]) for r in con.execute(f"SELECT id FROM {table}").fetchall()])
        con.commit()
        next_id = [first_id]
        began = time.perf_counter()
        changed = 0
        for done in range(0, changes, TXN):
            if rate:
                wait = began + done / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            changed += commit_changes(con, table, rng, next_id, live)
    return changed


def bare_drain(
    url: str, slot: str, publication: str, expected: int
) -> tuple[int, float, float, int]:
    """The floor: read, decode and confirm until ``expected`` changes came (the server's WAL
    position is no stop sign: other sessions write WAL too); (changes, seconds, CPU seconds,
    last LSN)."""
    con = psycopg2.connect(url, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    cur = con.cursor()
    cur.start_replication(
        slot_name=slot,
        decode=False,
        options={"proto_version": "1", "publication_names": publication},
    )
    decoder = Relations()
    changes, last = 0, 0
    began, began_cpu = time.perf_counter(), time.process_time()
    while True:
        message = cur.read_message()
        if message is None:
            select.select([con], [], [], 0.5)
            continue
        decoded = decoder.decode(message.payload)
        if isinstance(decoded, Change):
            changes += 1
        elif isinstance(decoded, Commit):
            last = decoded.end_lsn
            cur.send_feedback(flush_lsn=last)
            if changes >= expected:  # the transaction holding the last change has ended
                break
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    con.close()
    return changes, seconds, cpu, last


def run_consumer(
    project: Project, stop_when: Any, lags: list[float] | None = None
) -> tuple[Any, float, float]:
    """Run the taxiway consumer until ``stop_when()``; (totals, seconds from the start of its
    first batch to the end of its last: the start-up is left out, this process's CPU seconds
    over that span)."""
    original = stream_cdc.CdcApplier.apply
    span: list[float] = []
    cpu: list[float] = []

    def timed(self: Any, transactions: Any) -> Any:
        if not span:
            span.append(time.perf_counter())
            cpu.append(time.process_time())
        result = original(self, transactions)
        span[1:] = [time.perf_counter()]
        cpu[1:] = [time.process_time()]
        if lags is not None:
            now = time.time()
            for txn in transactions:
                committed = (PG_EPOCH + timedelta(microseconds=txn.commit_us)).timestamp()
                lags.append(now - committed)
        return result

    stream_cdc.CdcApplier.apply = timed  # type: ignore[method-assign]

    async def main() -> Any:
        stop = asyncio.Event()
        store = SqliteStore(project.state_dir / "online.sqlite")

        async def watch() -> None:
            while not stop_when():
                await asyncio.sleep(0.05)
            stop.set()

        try:
            watcher = asyncio.create_task(watch())
            totals = await run_streams(project.spec, store, project.state_dir, stop=stop)
            await watcher
            return totals["orders"]
        finally:
            store.close()

    began, began_cpu = time.perf_counter(), time.process_time()
    try:
        totals = asyncio.run(main())
    finally:
        stream_cdc.CdcApplier.apply = original  # type: ignore[method-assign]
    if len(span) == 2:
        return totals, span[1] - span[0], cpu[1] - cpu[0]
    return totals, time.perf_counter() - began, time.process_time() - began_cpu


def stored_position(project: Project) -> int:
    import sqlite3

    path = project.state_dir / "streams.sqlite"
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        row = con.execute("SELECT lsn FROM cdc_position WHERE source = 'orders'").fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()
    return 0 if row is None else int(row[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    command = "bench/cdc.py " + shlex.join(sys.argv[1:])
    tag = uuid.uuid4().hex[:8]
    table, slot, bare_slot = f"bench_cdc_{tag}", f"tw_bench_{tag}", f"bare_bench_{tag}"
    with psycopg.connect(args.url, autocommit=True) as con:
        con.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, k int NOT NULL, ts timestamptz NOT NULL, "
            "v float8, note text)"
        )
        con.execute(rows_sql(table)["insert"], (0, args.rows - 1))
    folder = Path(tempfile.mkdtemp(prefix="bench_cdc_"))
    text = f"""name: bench
sources:
  orders: {{kind: postgres, url: '{args.url}', table: public.{table}, timestamp: ts, cdc: true,
           history: history, slot: {slot}}}
entities: {{customer: k}}
features:
  spend: {{source: orders, entity: customer, aggregate: {{n: count(*), total: sum(v), top: max(v)}},
          windows: [30d], tiles: 1d}}
  last: {{source: orders, entity: customer, latest: [v, note]}}
"""
    (folder / "taxiway.yaml").write_text(text)
    project = Project(
        load_spec_text(text, str(folder / "taxiway.yaml"), base_dir=folder),
        folder / "taxiway.yaml",
        folder / ".state",
    )
    try:
        # 1. the snapshot (creates the slot), then a second slot for the bare consumer
        totals, seconds, _ = run_consumer(project, lambda: stored_position(project) > 0)
        print(f"snapshot: {totals.snapshot_rows:,} rows in {seconds:.1f} s")
        with psycopg.connect(args.url, autocommit=True) as con:
            con.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (bare_slot,))
        # 2. the backlog, committed with no consumer running
        began = time.perf_counter()
        expected = writer(args.url, table, args.backlog, 0, seed=1, first_id=10_000_000)
        print(f"backlog: {expected:,} changes committed in {time.perf_counter() - began:.1f} s")
        # 3. drains: the floor, then taxiway, over the same WAL
        changes, bare_s, bare_cpu, last = bare_drain(args.url, bare_slot, slot, expected)
        totals, tw_s, tw_cpu = run_consumer(project, lambda: stored_position(project) >= last)
        print(
            f"drain, bare psycopg2 loop (decode + confirm, no storage): {changes:,} changes in "
            f"{bare_s:.2f} s = {changes / bare_s:,.0f} changes/s; "
            f"CPU {bare_cpu / changes * 1e6:.1f} us/change"
        )
        print(
            f"drain, taxiway (tiles + latest values + Delta history + position): "
            f"{totals.applied:,} changes in {tw_s:.2f} s = {totals.applied / tw_s:,.0f} "
            f"changes/s; CPU {tw_cpu / max(totals.applied, 1) * 1e6:.1f} us/change"
        )
        # 4. lag at a fixed rate
        lags: list[float] = []
        total = int(args.rate * args.seconds)
        process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--write",
                args.url,
                table,
                str(total),
                str(args.rate),
            ],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        done = threading.Event()

        def finished() -> bool:
            if process.poll() is not None and not done.is_set():
                done.set()
                done.finished_at = time.monotonic()  # type: ignore[attr-defined]
            return done.is_set() and time.monotonic() - done.finished_at > 3  # type: ignore[attr-defined]

        totals, seconds, lag_cpu = run_consumer(project, finished, lags)
        wrote_s = seconds
        print(
            f"lag at {args.rate:,.0f} changes/s offered for {args.seconds:.0f} s "
            f"(applied over {wrote_s:.1f} s: {totals.applied / wrote_s:,.0f}/s achieved): "
            f"{totals.applied:,} applied in {len(lags):,} transactions; lag p50 "
            f"{statistics.median(lags):.3f} s, p99 {percentile(lags, 0.99):.3f} s, "
            f"max {max(lags):.3f} s; CPU {lag_cpu / max(totals.applied, 1) * 1e6:.1f} us/change"
        )
        print(f"command: .venv/bin/python {command}")
    finally:  # (a SIGTERM skips this: drop the bench_* slots, publication and table by hand)
        with psycopg.connect(args.url, autocommit=True) as con:
            for name in (slot, bare_slot):
                con.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    (name,),
                )
            con.execute(f'DROP PUBLICATION IF EXISTS "{slot}"')
            con.execute(f"DROP TABLE IF EXISTS {table}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--write":
        url, table, changes, rate = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        writer(url, table, changes, rate, seed=2, first_id=20_000_000)
    else:
        main()
