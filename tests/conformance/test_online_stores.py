"""One suite every online store passes: same values back, upserts per view, one-trip reads.

Adding a backend means adding an opener to ``OPENERS``; nothing else changes. Redis runs on
the real server (skipped without it on a laptop, failed without it in CI), each test under
its own key prefix, cleared afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest
from tests.conftest import require_service

from taxiway.errors import FeatureError
from taxiway.features.online import OnlineStore, SqliteStore, ViewValues, open_online_store
from taxiway.spec.models import RedisOnlineStore, SqliteOnlineStore

REDIS_URL = "redis://127.0.0.1:6379/0"
AT = datetime(2025, 1, 6, 9, 30, 15, 123456, tzinfo=UTC)

Opener = Callable[[], OnlineStore]


def _sqlite(tmp_path: Path) -> Opener:
    return lambda: SqliteStore(tmp_path / "state" / "online.sqlite")


def _redis(_: Path) -> Opener:
    require_service("Redis", "127.0.0.1", 6379)
    spec = RedisOnlineStore(kind="redis", url=REDIS_URL, prefix=f"tw-test:{uuid4().hex}")
    # a generous timeout: these tests check behaviour, not latency, on a possibly busy machine
    spec = spec.model_copy(update={"timeout_ms": 2_000.0})
    return lambda: open_online_store(spec, state_dir=Path(), namespace="unused")


OPENERS: dict[str, Callable[[Path], Opener]] = {"sqlite": _sqlite, "redis": _redis}


@pytest.fixture(params=sorted(OPENERS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores of one backend over the same data; clears and closes them all after."""
    make = OPENERS[request.param](tmp_path)
    opened: list[OnlineStore] = []

    def opener() -> OnlineStore:
        store = make()
        opened.append(store)
        return store

    yield opener
    opener().clear()
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Opener) -> OnlineStore:
    return open_store()


def view(
    name: str, at: datetime = AT, event_time: datetime | None = AT, **values: object
) -> ViewValues:
    """A ``ViewValues`` of view ``name`` whose features are ``<name>__<feature>``."""
    return ViewValues(name, {f"{name}__{k}": v for k, v in values.items()}, event_time, at)


def test_each_backend_is_an_online_store(store: OnlineStore) -> None:
    assert isinstance(store, OnlineStore)


def test_values_of_every_scalar_kind_come_back_equal(store: OnlineStore) -> None:
    values = view(
        "profile",
        missing=None,
        yes=True,
        no=False,
        zero=0,
        big=2**62,
        negative=-7,
        ratio=0.1,
        tiny=5e-324,
        text="",
        unicode='Zoë 東京 🚕 "quoted" \\ \n',
    )
    assert store.write("customer", [("42", values)]) == 1

    assert store.read("customer", ["42"]) == {"42": [values]}
    back = store.read("customer", ["42"])["42"][0].values
    assert back["profile__yes"] is True
    assert back["profile__zero"] == 0
    assert type(back["profile__zero"]) is int
    assert type(back["profile__ratio"]) is float


def test_nan_and_infinity_are_stored_as_missing(store: OnlineStore) -> None:
    store.write("customer", [("1", view("orders", mean=float("nan"), peak=float("inf")))])

    assert store.read("customer", ["1"])["1"][0].values == {
        "orders__mean": None,
        "orders__peak": None,
    }


def test_numpy_scalars_are_stored_as_python_values(store: OnlineStore) -> None:
    store.write(
        "customer",
        [("1", view("orders", count=np.int64(3), spend=np.float64(2.5), flag=np.bool_(True)))],
    )

    values = store.read("customer", ["1"])["1"][0].values
    assert values == {"orders__count": 3, "orders__spend": 2.5, "orders__flag": True}
    assert type(values["orders__count"]) is int


def test_a_value_that_is_not_a_scalar_is_refused_by_name(store: OnlineStore) -> None:
    with pytest.raises(FeatureError, match="orders__when"):
        store.write("customer", [("1", view("orders", when=AT))])


def test_writing_a_view_replaces_it_for_that_key_and_keeps_the_others(
    store: OnlineStore,
) -> None:
    store.write(
        "customer",
        [
            ("1", view("orders", count=1, spend=10.0)),
            ("1", view("profile", country="FR")),
            ("2", view("orders", count=5, spend=50.0)),
        ],
    )
    later = AT + timedelta(days=1)

    store.write("customer", [("1", view("orders", at=later, event_time=later, count=2))])

    got = store.read("customer", ["1", "2"])
    assert got["1"] == [
        view("orders", at=later, event_time=later, count=2),
        view("profile", country="FR"),
    ]
    assert got["2"] == [view("orders", count=5, spend=50.0)]


def test_keys_never_written_are_absent(store: OnlineStore) -> None:
    store.write("customer", [("1", view("orders", count=1))])

    assert store.read("customer", ["2", "1", "3"]).keys() == {"1"}
    assert store.read("customer", ["nobody"]) == {}
    assert store.read("customer", []) == {}


def test_one_read_returns_every_view_of_100_keys_in_view_order(store: OnlineStore) -> None:
    names = ["visits", "orders", "profile", "returns", "basket"]
    rows = [(str(i), view(name, n=i)) for i in range(100) for name in names]
    assert store.write("customer", rows) == 500

    got = store.read("customer", [str(i) for i in range(100)])

    assert len(got) == 100
    assert [v.view for v in got["57"]] == sorted(names)
    assert got["57"][0] == view("basket", n=57)


def test_a_key_asked_twice_is_answered_once(store: OnlineStore) -> None:
    store.write("customer", [("1", view("orders", count=1))])

    assert store.read("customer", ["1", "1"]) == {"1": [view("orders", count=1)]}


def test_entities_are_isolated(store: OnlineStore) -> None:
    store.write("customer", [("1", view("orders", count=1))])
    store.write("store", [("1", view("sales", total=99.5))])

    assert store.read("customer", ["1"]) == {"1": [view("orders", count=1)]}
    assert store.read("store", ["1"]) == {"1": [view("sales", total=99.5)]}
    assert store.read("product", ["1"]) == {}


def test_clear_of_one_entity_keeps_the_others_and_clear_of_all_removes_all(
    store: OnlineStore,
) -> None:
    store.write("customer", [(str(i), view("orders", count=i)) for i in range(10)])
    store.write("store", [("1", view("sales", total=1.0))])

    store.clear("customer")

    assert store.read("customer", [str(i) for i in range(10)]) == {}
    assert store.read("store", ["1"]) == {"1": [view("sales", total=1.0)]}

    store.clear()

    assert store.read("store", ["1"]) == {}
    assert store.write("store", [("1", view("sales", total=2.0))]) == 1


@pytest.mark.parametrize(
    ("event_time", "as_of"),
    [
        pytest.param(AT, AT + timedelta(hours=1), id="aware-utc"),
        pytest.param(None, AT, id="no-event-time"),
        pytest.param(
            datetime(2025, 1, 6, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
            datetime(2025, 1, 6, 9, 30, 15, 999999, tzinfo=UTC),
            id="other-zone",
        ),
        pytest.param(
            datetime(1999, 12, 31, 23, 59, 59), datetime(2038, 1, 19, 3, 14, 8), id="naive"
        ),
    ],
)
def test_datetimes_come_back_aware_utc_and_equal(
    store: OnlineStore, event_time: datetime | None, as_of: datetime
) -> None:
    store.write("customer", [("1", ViewValues("orders", {"orders__n": 1}, event_time, as_of))])

    back = store.read("customer", ["1"])["1"][0]

    def utc(moment: datetime) -> datetime:
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # naive means UTC

    assert back.as_of == utc(as_of)
    assert back.as_of.tzinfo is UTC
    if event_time is None:
        assert back.event_time is None
    else:
        assert back.event_time == utc(event_time)
        assert back.event_time.tzinfo is UTC


@pytest.mark.parametrize(
    "key",
    ["a|b", "ü", "a:b", "a:b:c", "*", "?", "[x]", "back\\slash", "", " padded ", "🚕", "x" * 500],
)
def test_any_string_is_a_key(store: OnlineStore, key: str) -> None:
    store.write("customer", [(key, view("orders", count=1))])

    assert store.read("customer", [key, "other"]) == {key: [view("orders", count=1)]}
    store.clear("customer")
    assert store.read("customer", [key]) == {}


@pytest.mark.parametrize("entity", ["", "a:b", "cust*", "x?", "[x]", "a\\b"])
def test_an_entity_name_that_cannot_be_a_namespace_is_refused(
    store: OnlineStore, entity: str
) -> None:
    with pytest.raises(FeatureError, match="entity name"):
        store.write(entity, [("1", view("orders", count=1))])
    with pytest.raises(FeatureError, match="entity name"):
        store.read(entity, ["1"])


def test_a_bulk_write_of_50k_rows_streams_and_reads_back_in_one_call(store: OnlineStore) -> None:
    count = 50_000  # above SQLite's default bound-variable limit (32,766) in one read

    def rows() -> Iterator[tuple[str, ViewValues]]:
        for i in range(count):
            yield f"c{i}", view("orders", count=i, spend=i * 0.5)

    assert store.write("customer", rows()) == count

    got = store.read("customer", [f"c{i}" for i in range(count)])
    assert len(got) == count
    assert got["c49999"] == [view("orders", count=49_999, spend=24_999.5)]


def test_data_outlives_the_store_that_wrote_it(open_store: Opener) -> None:
    writer = open_store()
    writer.write("customer", [("1", view("orders", count=1))])
    writer.close()

    assert open_store().read("customer", ["1"]) == {"1": [view("orders", count=1)]}


def test_threads_read_concurrently_and_see_the_same_values(store: OnlineStore) -> None:
    store.write("customer", [(str(i), view("orders", count=i)) for i in range(200)])
    failures: list[BaseException] = []

    def reader(offset: int) -> None:
        try:
            for round_ in range(50):
                keys = [str((offset + round_ + i) % 200) for i in range(20)]
                got = store.read("customer", keys)
                assert {k: v[0].values["orders__count"] for k, v in got.items()} == {
                    k: int(k) for k in keys
                }
        except BaseException as error:  # handed to the main thread
            failures.append(error)

    threads = [threading.Thread(target=reader, args=(n * 13,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []


def test_the_spec_picks_the_store(tmp_path: Path) -> None:
    default = open_online_store(None, state_dir=tmp_path, namespace="repurchase")
    chosen = open_online_store(
        SqliteOnlineStore(kind="sqlite", path=str(tmp_path / "elsewhere.db")),
        state_dir=tmp_path,
        namespace="repurchase",
    )
    try:
        assert isinstance(default, SqliteStore)
        assert default.path == tmp_path / "online.sqlite"
        assert isinstance(chosen, SqliteStore)
        assert chosen.path == tmp_path / "elsewhere.db"
    finally:
        default.close()
        chosen.close()


def test_stored_tiles_come_back_with_their_state_and_events(store: OnlineStore) -> None:
    """What the stream consumer's update starts from: each stored tile's (state, events)."""
    tiles = store.tiles  # type: ignore[attr-defined]
    tiles.put("customer", "orders", [("1", 7, b"[1]", b"[[5]]"), ("2", 8, b"[2]", b"[[6],[7]]")])
    tiles.put("customer", "visits", [("1", 7, b"[9]", b"[[9]]")])
    wanted = [("1", 7), ("2", 8), ("2", 7), ("3", 1)]
    assert tiles.stored("customer", "orders", wanted) == {
        ("1", 7): (b"[1]", b"[[5]]"),
        ("2", 8): (b"[2]", b"[[6],[7]]"),
    }
    assert tiles.stored("customer", "orders", []) == {}


def test_forget_deletes_the_keys_vectors_and_tiles_and_nothing_else(store: OnlineStore) -> None:
    keys = ["1", "11", "x:1", "2"]
    store.write("customer", [(k, view("orders", count=i)) for i, k in enumerate(keys)])
    store.write("store", [("1", view("sales", total=1.0))])
    tiles = store.tiles  # type: ignore[attr-defined]
    for name in ("orders", "visits"):
        tiles.put("customer", name, [(k, 7, b"{}", b"[]") for k in keys])
    wanted = [(k, 7) for k in keys]

    removed = store.forget("customer", ["1", "never-written"])

    assert removed == 1  # one key held something: its vector and the tiles of two views
    assert sorted(store.read("customer", keys)) == ["11", "2", "x:1"]
    assert store.read("store", ["1"]) == {"1": [view("sales", total=1.0)]}
    for name in ("orders", "visits"):
        assert sorted(tiles.events("customer", name, wanted)) == [("11", 7), ("2", 7), ("x:1", 7)]
    assert store.forget("customer", ["1"]) == 0
