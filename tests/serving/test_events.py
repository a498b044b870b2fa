"""POST /v1/events/{source} against a real NATS JetStream: 202 with the stream sequence (a
repeat is JetStream's duplicate), 422 naming the field and the fix, 404 for an unknown
source, 503 when NATS is down."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.conftest import require, require_service

from taxiway.serving.events import EventPublisher, events_route
from taxiway.spec import load_spec_text

nats = require("nats", reason="nats-py is the stream extra")

CONTRACT = """
apiVersion: v3.1.0
schema:
  - name: ev
    properties:
      - {name: k, logicalType: integer, required: true}
      - {name: v, logicalType: number, logicalTypeOptions: {minimum: 0}}
"""


def publisher(folder: Path, url: str, subject: str, stream: str) -> EventPublisher:
    (folder / "ev.contract.yaml").write_text(CONTRACT)
    text = f"""
name: events
sources:
  ev: {{kind: nats, url: '{url}', subject: {subject}, stream: {stream}, durable: tw,
        timestamp: ts, history: history, contract: ev.contract.yaml}}
entities: {{e: k}}
features:
  agg: {{source: ev, entity: e, aggregate: {{n: count(*)}}, windows: [1d], tiles: 1h}}
"""
    return EventPublisher(load_spec_text(text, "taxiway.yaml", base_dir=folder))


def post(events: EventPublisher, calls: list[tuple[str, Any, dict[str, str]]]) -> list[Any]:
    """Each ``(source, json body, headers)`` posted to a Starlette app of the route."""
    app = Starlette(routes=[events_route(events)])

    async def run() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return [
                    await client.post(f"/v1/events/{source}", json=body, headers=headers)
                    for source, body, headers in calls
                ]
        finally:
            await events.close()

    return asyncio.run(run())


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    require_service("NATS", "127.0.0.1", 4222)
    tag = uuid.uuid4().hex[:10]
    yield f"tw.events.{tag}", f"TW_EVENTS_{tag}"

    async def delete() -> None:
        client = await nats.connect("nats://127.0.0.1:4222")
        try:
            for name in (f"TW_EVENTS_{tag}", f"TW_EVENTS_{tag}_QUARANTINE"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await client.jetstream().delete_stream(name)
        finally:
            await client.close()

    asyncio.run(delete())


def test_an_event_is_stored_once_and_answered_202_with_its_sequence(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    subject, stream = names
    events = publisher(tmp_path, "nats://127.0.0.1:4222", subject, stream)
    event = {"k": 7, "ts": "2026-03-01T10:00:00Z", "v": 2.5}
    first, second, other = post(
        events,
        [
            ("ev", event, {"Idempotency-Key": "order-1"}),
            ("ev", event, {"Idempotency-Key": "order-1"}),  # a retry
            ("ev", {**event, "k": 8}, {"Idempotency-Key": "order-2"}),
        ],
    )
    assert first.status_code == 202, first.text
    assert first.json() == {"source": "ev", "stream": stream, "seq": 1, "duplicate": False}
    assert second.status_code == 202
    assert second.json()["duplicate"] is True
    assert second.json()["seq"] == 1
    assert other.json()["seq"] == 2

    async def stored() -> list[tuple[bytes, str]]:
        client = await nats.connect("nats://127.0.0.1:4222")
        try:
            sub = await client.jetstream().pull_subscribe(subject, durable="check")
            return [(m.data, m.headers["Nats-Msg-Id"]) for m in await sub.fetch(5, timeout=1)]
        finally:
            await client.close()

    found = asyncio.run(stored())
    assert [msg_id for _, msg_id in found] == ["order-1", "order-2"]


def test_a_refused_event_is_a_422_naming_the_field_and_the_fix(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    subject, stream = names
    events = publisher(tmp_path, "nats://127.0.0.1:4222", subject, stream)
    key = {"Idempotency-Key": "x"}
    answers = post(
        events,
        [
            ("ev", {"k": 7, "ts": "2026-03-01T10:00:00Z", "v": -1}, key),
            ("ev", {"k": 7, "ts": "yesterday"}, key),
            ("ev", {"ts": "2026-03-01T10:00:00Z"}, key),
            ("ev", {"k": 7, "ts": "2026-03-01T10:00:00Z"}, {}),
            ("ev", [1, 2], key),
            ("nope", {"k": 7}, key),
        ],
    )
    assert [a.status_code for a in answers] == [422, 422, 422, 422, 422, 404]
    minimum = answers[0].json()["detail"][0]
    assert minimum["loc"] == ["body", "v"]
    assert minimum["msg"].startswith("v.minimum")
    assert "contract" in minimum["fix"]
    time = answers[1].json()["detail"][0]
    assert time["loc"] == ["body", "ts"]
    assert "2026-01-31T12:00:00Z" in time["fix"]
    assert answers[2].json()["detail"][0]["loc"] == ["body", "k"]
    assert "Idempotency-Key" in answers[3].json()["detail"][0]["fix"]
    assert answers[4].json()["detail"][0]["msg"] == "the body is not a JSON object"
    assert "nats sources: ev" in answers[5].json()["error"]


def test_nats_down_is_a_503_with_retry_after(tmp_path: Path) -> None:
    events = publisher(tmp_path, "nats://127.0.0.1:1", "tw.down", "TW_DOWN")
    event = {"k": 7, "ts": "2026-03-01T10:00:00Z"}
    first, second = post(
        events, [("ev", event, {"Idempotency-Key": "a"}), ("ev", event, {"Idempotency-Key": "a"})]
    )
    for answer in (first, second):  # the second at once, without waiting on a connect again
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
    assert "127.0.0.1:1" in first.json()["error"]
    assert "nats-server" in first.json()["fix"]
