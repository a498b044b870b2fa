"""The stream consumer's CPU per event, in one process: ``StreamApplier.apply`` on batches of
retail orders, profiled on CPU time (no NATS: the cost of checking, journalling, tiling and
writing the history of each batch).

    .venv/bin/python bench/stream_apply.py [--batches 10] [--batch 500] [--top 25]

The spec is examples/retail-stream's (the order contract, the tiled ``customer_live`` view,
SQLite store) in a temporary folder; one batch is applied first to warm up, then ``--batches``
are profiled with ``cProfile`` timed by ``time.process_time``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from stream import stream_spec
from toolkit import machine

from taxiway.features.online import open_online_store
from taxiway.features.stream import StreamApplier, StreamEvent
from taxiway.features.stream_journal import StreamJournal
from taxiway.spec.project import Project


def batches(count: int, size: int) -> list[list[StreamEvent]]:
    """``count`` batches of ``size`` orders for 2,000 customers, placed now."""
    rng = random.Random(1)
    out, seq = [], 0
    for _ in range(count):
        now = datetime.now(UTC).isoformat()
        events = []
        for _ in range(size):
            seq += 1
            body = {"order_id": seq, "customer_id": 100_001 + rng.randrange(2000),
                    "product_id": 3, "ordered_at": now, "ingested_at": now, "amount": 12.5,
                    "quantity": 1, "status": "placed"}  # fmt: skip
            events.append(StreamEvent(str(seq), json.dumps(body).encode(), seq))
        out.append(events)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-bench-apply-") as name:
        project = Project.load(stream_spec(Path(name)))
        project.state_dir.mkdir(parents=True)
        store = open_online_store(
            project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
        )
        journal = StreamJournal(project.state_dir / "streams.sqlite")
        try:
            applier = StreamApplier(project.spec, "orders_live", store, journal)
            work = batches(args.batches + 1, args.batch)
            applier.apply(work[0])
            profile = cProfile.Profile(time.process_time)
            cpu, wall = time.process_time(), time.perf_counter()
            profile.enable()
            for events in work[1:]:
                applier.apply(events)
            profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            applier.close()
        finally:
            journal.close()
            store.close()
    n = args.batches * args.batch
    print(machine())
    print(
        f"{n:,} events in {args.batches} batches: CPU {cpu:.2f} s ({cpu / n * 1e6:.0f} µs per "
        f"event, at most {n / cpu:,.0f} events/s per core), wall {wall:.2f} s"
    )
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
