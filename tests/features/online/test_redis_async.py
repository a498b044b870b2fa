"""``RedisStore.aread``: the same answers as ``read``, on the event loop, and safe to abandon.

The prediction service awaits ``aread`` under a deadline and cancels it when the deadline
passes; a cancelled read must never leave an answer in flight on a connection that a later
read then takes as its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import require_service

from taxiway.errors import FeatureError
from taxiway.features.lookup import lookup_values, values_of
from taxiway.features.online import RedisStore, ViewValues
from taxiway.features.online.base import AsyncReader
from taxiway.spec.project import Project

AT = datetime(2025, 1, 6, tzinfo=UTC)
LIVE = "redis://127.0.0.1:6379/0"
RETAIL = Path(__file__).parents[3] / "examples" / "retail" / "taxiway.yaml"


def views(i: int) -> list[ViewValues]:
    return [
        ViewValues("orders", {"orders__count": i, "orders__sum": i * 1.5}, AT, AT),
        ViewValues("profile", {"profile__segment": f"s{i % 3}"}, None, AT),
    ]


@pytest.fixture(scope="module")
def live() -> Iterator[RedisStore]:
    """A store on the real server under a fresh prefix, with 50 keys, cleared afterwards."""
    require_service("Redis", "127.0.0.1", 6379)
    store = RedisStore(LIVE, f"tw-test:{uuid4().hex}", timeout_ms=2_000)
    store.write("customer", [(str(i), v) for i in range(50) for v in views(i)])
    yield store
    store.clear()
    store.close()


def test_the_store_is_an_async_reader(live: RedisStore) -> None:
    assert isinstance(live, AsyncReader)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([*map(str, range(50)), "absent", "also-absent"]), max_size=8))
def test_aread_answers_what_read_answers(live: RedisStore, keys: list[str]) -> None:
    async def both() -> dict[str, list[ViewValues]]:
        try:
            return await live.aread("customer", keys)
        finally:
            await live.aclose()

    assert asyncio.run(both()) == live.read("customer", keys)


def test_values_of_what_aread_found_equal_lookup_values(live: RedisStore) -> None:
    spec = Project.load(RETAIL).spec
    written = []
    for name, view in spec.features.items():
        if view.entity == "customer":
            columns = view.output_names(name)
            written.append(ViewValues(name, dict.fromkeys(columns[:-1], 1.0), AT, AT))
    live.write("customer", [("retail-1", v) for v in written])

    async def read() -> dict[str, list[ViewValues]]:
        try:
            return await live.aread("customer", ["retail-1"])
        finally:
            await live.aclose()

    stored = asyncio.run(read()).get("retail-1")
    now = datetime(2025, 1, 7, tzinfo=UTC)
    got = values_of(spec, "customer", stored, now=now)
    assert got == lookup_values(spec, live, "customer", "retail-1", now=now)
    assert any(v == 1.0 for v in got.values())
    assert any(v is None for v in got.values())  # the column left out of each view


def test_a_cancelled_read_never_hands_its_answer_to_the_next_read(live: RedisStore) -> None:
    async def run() -> list[tuple[str, int]]:
        seen: list[tuple[str, int]] = []
        try:
            for i in range(200):
                key = str(i % 50)
                task = asyncio.ensure_future(live.aread("customer", [key]))
                await asyncio.sleep(0)  # sent, or about to be: then abandoned
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                other = str((i * 7 + 3) % 50)
                got = await live.aread("customer", [other])
                count = got[other][0].values["orders__count"]
                seen.append((other, count))
        finally:
            await live.aclose()
        return seen

    for key, count in asyncio.run(run()):
        assert count == int(key), f"read of {key} got the answer for {count}"


def test_a_refused_connection_is_a_feature_error_naming_the_server() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisStore(f"redis://:secret@127.0.0.1:{port}/0", "tw-test:refused", timeout_ms=500)

    async def read() -> None:
        try:
            await store.aread("customer", ["1"])
        finally:
            await store.aclose()

    with pytest.raises(FeatureError) as raised:
        asyncio.run(read())
    assert f"127.0.0.1:{port}" in raised.value.message
    assert "secret" not in raised.value.message
    store.close()


def test_each_event_loop_gets_its_own_client(live: RedisStore) -> None:
    async def read(key: str) -> int:
        try:
            found = await live.aread("customer", [key])
        finally:
            await live.aclose()  # on the loop that opened it, as the service does at stop
        return int(found[key][0].values["orders__count"])

    assert asyncio.run(read("3")) == 3
    assert asyncio.run(read("4")) == 4  # a new loop: a new client, not the closed one


def test_a_thousand_concurrent_reads_share_a_bounded_pool(live: RedisStore) -> None:
    import redis

    from taxiway.features.online.redis import ASYNC_CLIENT_NAME, ASYNC_CONNECTIONS

    watcher = redis.Redis.from_url(LIVE)

    def ours() -> int:
        return sum(1 for c in watcher.client_list() if c.get("name") == ASYNC_CLIENT_NAME)

    before = ours()  # other tests' clients are closed; a parallel run could add its own

    async def many() -> tuple[list[dict[str, list[ViewValues]]], int]:
        try:
            found = await asyncio.gather(
                *(live.aread("customer", [str(i % 50)]) for i in range(1000))
            )
            return found, ours()
        finally:
            await live.aclose()

    found, during = asyncio.run(many())
    watcher.close()
    assert all(f[str(i % 50)][0].values["orders__count"] == i % 50 for i, f in enumerate(found))
    assert 1 <= during - before <= min(ASYNC_CONNECTIONS, 64)  # unbounded, it was 1,000
