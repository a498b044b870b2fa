"""`simulate.py --stream` against a real NATS JetStream: live orders at the asked rate, each a
JSON order placed now, numbered after the file's orders, with its order_id as Nats-Msg-Id;
the backfill's redelivered orders are stored once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import EXAMPLES, load_script, require, require_service

URL = "nats://127.0.0.1:4222"


async def stored(stream: str, subject: str) -> list[tuple[dict[str, Any], str]]:
    nats = require("nats", reason="nats-py is the stream extra")
    client = await nats.connect(URL)
    try:
        js = client.jetstream()
        found: list[tuple[dict[str, Any], str]] = []
        sub = await js.pull_subscribe(subject, durable="check", stream=stream)
        while True:
            try:
                batch = await sub.fetch(1000, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                return found
            found += [(json.loads(m.data), m.headers["Nats-Msg-Id"]) for m in batch]
    finally:
        for name in (stream,):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().delete_stream(name)
        await client.close()


@pytest.mark.nats
def test_stream_publishes_the_backfill_once_then_live_orders_placed_now(tmp_path: Path) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    simulate = load_script("retail_sim_publish", EXAMPLES / "retail" / "simulate.py")
    simulate.simulate(tmp_path, customers=50)
    orders = pq.read_table(tmp_path / "orders.parquet")
    tag = uuid.uuid4().hex[:10]
    subject, stream = f"tw.sim.{tag}", f"TW_SIM_{tag}"
    began = datetime.now(UTC)
    sent = asyncio.run(
        simulate.stream_orders(
            tmp_path / "orders.parquet", url=URL, subject=subject, stream=stream,
            rate=100, duration=0.5, backfill=True,
        )
    )  # fmt: skip
    found = asyncio.run(stored(stream, subject))
    assert sent.backfilled == orders.num_rows
    assert 40 <= sent.live <= 51
    distinct = len(set(orders["order_id"].to_pylist()))
    assert distinct < orders.num_rows  # the file holds redelivered orders...
    assert len(found) == distinct + sent.live  # ...which JetStream stored once
    assert all(msg_id == str(body["order_id"]) for body, msg_id in found)
    live = found[distinct:]
    last = int(pc.max(orders["order_id"]).as_py())
    assert [body["order_id"] for body, _ in live] == list(range(last + 1, last + 1 + sent.live))
    for body, _ in live:
        placed = datetime.fromisoformat(body["ordered_at"])
        assert began - timedelta(seconds=1) <= placed <= datetime.now(UTC)
        assert body["ingested_at"] == body["ordered_at"]
        assert body["status"] == "placed"
        assert body["customer_id"] is not None
        assert body["amount"] > 0


def test_stream_refuses_a_rate_of_zero(tmp_path: Path) -> None:
    simulate = load_script("retail_sim_publish", EXAMPLES / "retail" / "simulate.py")
    simulate.simulate(tmp_path, customers=20)
    with pytest.raises(ValueError, match="--rate must be above 0"):
        asyncio.run(simulate.stream_orders(tmp_path / "orders.parquet", rate=0))
