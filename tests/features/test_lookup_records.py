"""``lookup`` judges status and age from the stores' epoch records exactly as datetime arithmetic.

Our stores answer a lookup with decoded records (``read_records``: times in epoch seconds);
any other store answers :class:`ViewValues` with datetimes. Both must give the values, status
and ages the module's rules give when computed with datetimes: age = round((now - time)
.total_seconds(), 3), stale when a latest value's age is past its ttl.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import require_service

from taxiway.features.lookup import FeatureValue, lookup
from taxiway.features.online import RedisStore, SqliteStore, ViewValues
from taxiway.spec import load_spec_text
from taxiway.spec.models import TaxiwaySpec

TTL = timedelta(days=30)
SPEC_TEXT = """
name: records
sources:
  orders: {kind: file, path: orders.parquet, timestamp: ts}
  profile: {kind: file, path: profile.parquet}
entities: {customer: customer_id}
features:
  orders: {source: orders, entity: customer, latest: [count, total], ttl: 30d}
  profile: {source: profile, entity: customer, latest: [segment]}
"""
NOW = datetime(2026, 1, 6, 12, 0, 0, 123457, tzinfo=UTC)


def spec(tmp: Path) -> TaxiwaySpec:
    return load_spec_text(SPEC_TEXT, str(tmp / "taxiway.yaml"), base_dir=tmp)


class ReadOnlyStore:
    """A store that answers only ``read`` (ViewValues with datetimes), like a third party's."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner

    def write(self, entity: str, rows: object) -> int:
        raise NotImplementedError

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        return self.inner.read(entity, keys)

    def clear(self, entity: str | None = None) -> None:
        raise NotImplementedError

    def forget(self, entity: str, keys: Sequence[str]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        self.inner.close()


def expected(rows: dict[str, list[ViewValues]], key: str) -> dict[str, FeatureValue]:
    """The module docstring's rules, with datetimes."""
    by_view = {v.view: v for v in rows.get(key, [])}
    out: dict[str, FeatureValue] = {}
    orders = by_view.get("orders")
    names = ["orders__count", "orders__total"]
    if orders is None or orders.event_time is None:
        out.update(dict.fromkeys(names, FeatureValue(None, "missing", None)))
    else:
        age = (NOW - orders.event_time).total_seconds()
        if age > TTL.total_seconds():
            out.update(dict.fromkeys(names, FeatureValue(None, "stale", round(age, 3))))
        else:
            out.update({n: FeatureValue(orders.values[n], "present", round(age, 3)) for n in names})
    profile = by_view.get("profile")
    if profile is None:
        out["profile__segment"] = FeatureValue(None, "missing", None)
    else:
        age = round((NOW - profile.as_of).total_seconds(), 3)
        out["profile__segment"] = FeatureValue(profile.values["profile__segment"], "present", age)
    return out


@pytest.fixture(scope="module")
def redis_store() -> Iterator[RedisStore]:
    require_service("Redis", "127.0.0.1", 6379)
    store = RedisStore("redis://127.0.0.1:6379/0", f"tw-test:{uuid4().hex}", timeout_ms=2_000)
    yield store
    store.clear()
    store.close()


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 1, 6, 12), timezones=st.just(UTC)
)
key_rows = st.tuples(
    st.one_of(st.none(), moments),  # the orders' event time (None: not time-stamped)
    moments,  # as_of
    st.booleans(),  # whether the key has its profile view
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(key_rows, min_size=1, max_size=12))
def test_record_and_datetime_paths_agree_with_the_rules(
    tmp_path_factory: pytest.TempPathFactory,
    redis_store: RedisStore,
    drawn: list[tuple[datetime | None, datetime, bool]],
) -> None:
    tmp = tmp_path_factory.mktemp("records")
    the_spec = spec(tmp)
    rows: list[tuple[str, ViewValues]] = []
    for i, (event_time, as_of, has_profile) in enumerate(drawn):
        rows.append(
            (
                str(i),
                ViewValues(
                    "orders", {"orders__count": i, "orders__total": i * 0.5}, event_time, as_of
                ),
            )
        )
        if has_profile:
            rows.append((str(i), ViewValues("profile", {"profile__segment": f"s{i}"}, None, as_of)))
    sqlite = SqliteStore(tmp / "online.sqlite")
    redis_store.clear("customer")
    try:
        sqlite.write("customer", rows)
        redis_store.write("customer", rows)
        keys = [str(i) for i in range(len(drawn))] + ["absent", "0"]
        stored = sqlite.read("customer", keys)
        want = [expected(stored, key) for key in keys]
        for store in (sqlite, redis_store, ReadOnlyStore(sqlite)):
            got = lookup(the_spec, store, "customer", keys, now=NOW)
            assert [g.key for g in got] == keys
            assert [g.features for g in got] == want, store
            assert [list(g.features) for g in got] == [list(w) for w in want]
            # values() read before (or without) the features: the same values
            fresh = lookup(the_spec, store, "customer", keys, now=NOW)
            assert [g.values() for g in fresh] == [
                {name: v.value for name, v in w.items()} for w in want
            ]
    finally:
        sqlite.close()


def test_redis_records_equal_sqlite_records(tmp_path: Path, redis_store: RedisStore) -> None:
    at = datetime(2025, 6, 1, 8, 30, 0, 1, tzinfo=UTC)
    rows = [
        (str(i), ViewValues(view, {f"{view}__x": i, f"{view}__s": 'Zoë/"'}, at, at))
        for i in range(5)
        for view in ("b/view", "a.view", 'q"view')
    ]
    sqlite = SqliteStore(tmp_path / "online.sqlite")
    redis_store.clear("customer")
    try:
        sqlite.write("customer", rows)
        redis_store.write("customer", rows)
        keys = ["3", "nope", "0", "4"]
        assert redis_store.read_records("customer", keys) == sqlite.read_records("customer", keys)
        assert redis_store.read_records("customer", ["2"]) == sqlite.read_records("customer", ["2"])
        assert redis_store.read("customer", keys) == sqlite.read("customer", keys)
    finally:
        sqlite.close()
