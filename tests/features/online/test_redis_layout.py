"""The Redis layout: one JSON string per key, stores of the earlier layout migrated by a write.

Taxiway before this layout kept one HASH per entity key with one field per view (the field's
value the view's JSON record). Such a store is refused by reads, with the fix, until the first
write migrates it in place; the migration keeps every stored value, of every entity.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
import redis
from tests.conftest import require_service

from taxiway.errors import FeatureError
from taxiway.features.online import RedisStore, ViewValues
from taxiway.features.online._codec import encode_record, to_epoch

LIVE = "redis://127.0.0.1:6379/0"
AT = datetime(2025, 1, 6, 9, 30, 0, 250001, tzinfo=UTC)


def orders(i: int) -> ViewValues:
    return ViewValues("orders", {"orders__count": i, "orders__name": f"Zoë/{i}"}, AT, AT)


def profile(i: int) -> ViewValues:
    return ViewValues("profile", {"profile__segment": f"s{i}", "profile__x": i / 3}, None, AT)


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    require_service("Redis", "127.0.0.1", 6379)
    client = redis.Redis.from_url(LIVE)
    yield client
    client.close()


@pytest.fixture
def prefix(raw: redis.Redis) -> Iterator[str]:
    name = f"tw-test:{uuid4().hex}"
    yield name
    for key in raw.scan_iter(match=f"{name}:*"):
        raw.unlink(key)


def write_earlier_layout(
    raw: redis.Redis, prefix: str, rows: list[tuple[str, str, ViewValues]]
) -> None:
    """What taxiway wrote before this layout: HSET prefix:entity:key view <record JSON>."""
    for entity, key, view in rows:
        event_time = None if view.event_time is None else to_epoch(view.event_time)
        record = encode_record(view.values, event_time, to_epoch(view.as_of))
        raw.hset(f"{prefix}:{entity}:{key}", mapping={view.view: record})


@pytest.fixture
def earlier(raw: redis.Redis, prefix: str) -> list[tuple[str, str, ViewValues]]:
    rows = [("customer", str(i), v) for i in range(30) for v in (orders(i), profile(i))]
    rows += [("store", "7", orders(7)), ("customer", 'q"/ü', orders(99))]
    write_earlier_layout(raw, prefix, rows)
    return rows


def test_reads_refuse_the_earlier_layout_with_the_fix(
    earlier: list[tuple[str, str, ViewValues]], prefix: str
) -> None:
    store = RedisStore(LIVE, prefix, timeout_ms=2_000)

    with pytest.raises(FeatureError, match="earlier taxiway versions") as caught:
        store.read("customer", ["1", "2"])

    assert "taxiway features materialize" in str(caught.value)
    store.close()


def test_the_first_write_migrates_every_key_keeping_every_value(
    earlier: list[tuple[str, str, ViewValues]], prefix: str, raw: redis.Redis
) -> None:
    store = RedisStore(LIVE, prefix, timeout_ms=2_000)

    store.write("customer", [("1", orders(1001))])  # replaces one view of one key

    assert store.migrated_keys == 32
    assert raw.type(f"{prefix}:customer:0") == b"string"
    expected: dict[tuple[str, str], list[ViewValues]] = {}
    for entity, key, view in earlier:
        expected.setdefault((entity, key), []).append(view)
    expected["customer", "1"][0] = orders(1001)
    reader = RedisStore(LIVE, prefix, timeout_ms=2_000)
    for (entity, key), views in expected.items():
        assert reader.read(entity, [key]) == {key: sorted(views, key=lambda v: v.view)}
    assert reader.read("customer", [str(i) for i in range(30)]) == {
        str(i): sorted(expected["customer", str(i)], key=lambda v: v.view) for i in range(30)
    }
    store.write("customer", [("2", orders(2))])  # migrates once per store
    assert store.migrated_keys == 32
    store.close()
    reader.close()


def test_a_store_cleared_whole_and_written_again_reads_in_one_command(
    prefix: str, raw: redis.Redis
) -> None:
    store = RedisStore(LIVE, prefix, timeout_ms=2_000)
    store.write("customer", [("1", orders(1))])
    store.clear()  # removes the layout marker with everything else
    assert store.read("customer", ["1"]) == {}

    store.write("customer", [("1", orders(2))])

    assert raw.get(f"{prefix}:layout") is not None
    assert store.read("customer", ["1"]) == {"1": [orders(2)]}
    store.close()


def test_concurrent_writers_of_different_views_never_lose_each_others(prefix: str) -> None:
    keys = [str(i) for i in range(300)]
    stores = [RedisStore(LIVE, prefix, timeout_ms=5_000) for _ in range(2)]
    stores[0].write("customer", [("seed", orders(0))])  # the marker, before the race
    errors: list[BaseException] = []

    def write(store: RedisStore, make: Callable[[int], ViewValues]) -> None:
        try:
            for start in range(0, len(keys), 20):  # many small writes: they interleave
                store.write("customer", [(k, make(int(k))) for k in keys[start : start + 20]])
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(stores[0], orders)),
        threading.Thread(target=write, args=(stores[1], profile)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    got = stores[0].read("customer", keys)
    assert got == {k: [orders(int(k)), profile(int(k))] for k in keys}
    for store in stores:
        store.close()
