"""The live consumer loop's CPU per event: ``--events`` orders published to a JetStream stream
first, then drained by the consumer's own loop (``taxiway.features.stream.consume``: fetch,
check, journal, tiles, Delta history, acks) in this process, timed by ``time.process_time``.

    .venv/bin/python bench/stream_drain.py [--events 100000] [--customers 2000] [--profile 30]
                                           [--floor]

Unlike bench/stream_apply.py (``apply`` alone, no NATS), this counts what the loop adds: the
fetches, ``m.metadata``, the acks, the flushes. The orders are stamped with the time of the
run, so they fall in the current hour's tile of each customer and the tiles grow as the drain
goes on, as they do under a live stream (``--customers`` sets how many events a tile gathers).
Needs NATS with JetStream on 127.0.0.1:4222; the spec is examples/retail-stream's (the order
contract, the tiled ``customer_live`` view, SQLite store) on a subject of its own, deleted
after the run. ``--profile N`` prints the N functions with the most own CPU time (cProfile;
the figure printed is then the profiled one, higher than without). ``--floor`` drains with an
applier that checks and stores nothing (each batch counted as applied): what the loop's NATS
work (fetch, message parsing, ``m.metadata``, acks) costs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.js.errors
from stream import URL, delete, stream_spec
from toolkit import machine

from taxiway.features.online import open_online_store
from taxiway.features.stream import BatchResult, StreamApplier, StreamEvent, consume
from taxiway.features.stream_journal import StreamJournal
from taxiway.spec.project import Project


class NoApply(StreamApplier):
    """An applier that counts each batch as applied and does nothing else (``--floor``)."""

    def recover(self) -> bool:
        return False

    def apply(self, events: Sequence[StreamEvent]) -> BatchResult:
        return BatchResult(applied=len(events))


async def publish(subject: str, stream: str, events: int, customers: int) -> None:
    """``events`` orders of random customers on ``subject``, stored by ``stream``."""
    client = await nats.connect(URL)
    try:
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[subject])
        rng = random.Random(18)
        now = datetime.now(UTC).isoformat()
        for seq in range(events):
            body = {"order_id": seq, "customer_id": 100_001 + rng.randrange(customers),
                    "product_id": 3, "ordered_at": now, "ingested_at": now,
                    "amount": round(rng.uniform(1, 200), 2), "quantity": 1,
                    "status": "placed"}  # fmt: skip
            await client.publish(
                subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": f"{subject}-{seq}"}
            )
            if seq % 5_000 == 0:
                await client.flush()
        await client.flush()
        while (await js.stream_info(stream)).state.messages < events:
            await asyncio.sleep(0.1)
    finally:
        await client.close()


async def drain(applier: StreamApplier, stream: str, events: int) -> tuple[float, int]:
    """Run the consumer until every event is acknowledged; return the wall seconds and the
    batches it took."""
    stop = asyncio.Event()
    began = time.perf_counter()
    run = asyncio.create_task(consume(applier, stop, progress_s=3600))
    client = await nats.connect(URL)
    try:
        js = client.jetstream()
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                info = await js.consumer_info(stream, "taxiway")
                if info.ack_floor is not None and info.ack_floor.stream_seq >= events:
                    break
            if run.done():
                break
        wall = time.perf_counter() - began
        stop.set()
        totals = await run
        assert totals.applied == events, totals  # nosec B101
    finally:
        await client.close()
    return wall, totals.batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest calls")
    parser.add_argument("--floor", action="store_true", help="fetch and ack only")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8].upper()
    subject, stream = f"tw.drain.{tag}", f"TW_DRAIN_{tag}"
    with tempfile.TemporaryDirectory(prefix="tw-bench-drain-") as name:
        project = Project.load(stream_spec(Path(name), subject, stream))
        project.state_dir.mkdir(parents=True)
        store = open_online_store(
            project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
        )
        journal = StreamJournal(project.state_dir / "streams.sqlite")
        try:
            asyncio.run(publish(subject, stream, args.events, args.customers))
            kind = NoApply if args.floor else StreamApplier
            applier = kind(project.spec, "orders_live", store, journal)
            profile = cProfile.Profile(time.process_time) if args.profile else None
            cpu = time.process_time()
            if profile is not None:
                profile.enable()
            wall, batches = asyncio.run(drain(applier, stream, args.events))
            if profile is not None:
                profile.disable()
            cpu = time.process_time() - cpu
            applier.close()
        finally:
            journal.close()
            store.close()
            asyncio.run(delete(stream))
    n = args.events
    print(machine())
    print(
        f"{n:,} events drained by the live loop{' (--floor: nothing applied)' if args.floor else ''} "
        f"({args.customers:,} customers): CPU {cpu:.2f} s "
        f"({cpu / n * 1e6:.0f} µs per event, at most {n / cpu:,.0f} events/s per core), "
        f"wall {wall:.2f} s ({n / wall:,.0f} events/s), {batches:,} batches"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
