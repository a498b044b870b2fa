"""What a lookup answers: each key's features judged once per view, read as they always were.

``lookup`` judges status and age per view and key, and builds each answer's ``features`` (a
:class:`FeatureValue` per feature) on first access. Whatever a caller reads first (``values()``,
``features``, ``as_dict()``, equality), it must read what an eager answer holds: the same
values, statuses, ages and order, for present, stale and missing views and for a feature the
store does not have yet (added to the spec since the last materialize).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.features.lookup import EntityFeatures, FeatureValue, _seconds_3, lookup
from taxiway.features.online import SqliteStore, ViewValues
from taxiway.spec import load_spec_text
from taxiway.spec.models import TaxiwaySpec

NOW = datetime(2026, 1, 6, 12, 0, 0, 500000, tzinfo=UTC)
SPEC_TEXT = """
name: result
sources:
  orders: {kind: file, path: orders.parquet, timestamp: ts}
  profile: {kind: file, path: profile.parquet}
entities: {customer: customer_id}
features:
  orders: {source: orders, entity: customer, latest: [count, total], ttl: 1d}
  profile: {source: profile, entity: customer, latest: [segment, tier]}
"""
FRESH = NOW - timedelta(hours=1, microseconds=1500)
OLD = NOW - timedelta(days=3)


@pytest.fixture
def spec(tmp_path: Path) -> TaxiwaySpec:
    return load_spec_text(SPEC_TEXT, str(tmp_path / "taxiway.yaml"), base_dir=tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "online.sqlite")
    opened.write(
        "customer",
        [
            ("fresh", ViewValues("orders", {"orders__count": 3, "orders__total": 9.5}, FRESH, NOW)),
            # profile__tier was added to the spec after this row was materialized
            ("fresh", ViewValues("profile", {"profile__segment": "gold"}, None, FRESH)),
            ("stale", ViewValues("orders", {"orders__count": 1, "orders__total": None}, OLD, NOW)),
            (
                "untimed",
                ViewValues("orders", {"orders__count": 7, "orders__total": 1.0}, None, NOW),
            ),
        ],
    )
    yield opened
    opened.close()


KEYS = ["fresh", "stale", "untimed", "never", "fresh"]
AGE = round((NOW - FRESH).total_seconds(), 3)
STALE_AGE = round((NOW - OLD).total_seconds(), 3)
MISSING = FeatureValue(None, "missing", None)
EXPECTED = {
    "fresh": {
        "orders__count": FeatureValue(3, "present", AGE),
        "orders__total": FeatureValue(9.5, "present", AGE),
        "profile__segment": FeatureValue("gold", "present", AGE),
        "profile__tier": MISSING,
    },
    "stale": {
        "orders__count": FeatureValue(None, "stale", STALE_AGE),
        "orders__total": FeatureValue(None, "stale", STALE_AGE),
        "profile__segment": MISSING,
        "profile__tier": MISSING,
    },
    "untimed": dict.fromkeys(
        ["orders__count", "orders__total", "profile__segment", "profile__tier"], MISSING
    ),
    "never": dict.fromkeys(
        ["orders__count", "orders__total", "profile__segment", "profile__tier"], MISSING
    ),
}


def test_features_hold_every_value_status_and_age_in_the_spec_order(
    spec: TaxiwaySpec, store: SqliteStore
) -> None:
    got = lookup(spec, store, "customer", KEYS, now=NOW)

    assert [g.key for g in got] == KEYS
    for result in got:
        assert result.features == EXPECTED[result.key]
        assert list(result.features) == list(EXPECTED[result.key])
        assert result.features is result.features  # built once


def test_values_read_first_equal_the_features_values(spec: TaxiwaySpec, store: SqliteStore) -> None:
    for result in lookup(spec, store, "customer", KEYS, now=NOW):
        values = result.values()  # before anything built the features
        assert values == {name: v.value for name, v in EXPECTED[result.key].items()}
        assert list(values) == list(EXPECTED[result.key])
        assert result.values() == {name: v.value for name, v in result.features.items()}


def test_answers_compare_print_and_serialize_as_the_eager_ones(
    spec: TaxiwaySpec, store: SqliteStore
) -> None:
    [fresh] = lookup(spec, store, "customer", ["fresh"], now=NOW)
    eager = EntityFeatures("customer", "fresh", NOW, dict(EXPECTED["fresh"]))

    assert fresh == eager
    assert repr(fresh) == repr(eager)
    assert fresh.as_dict() == eager.as_dict()
    assert fresh.as_dict()["features"]["profile__tier"] == {
        "value": None,
        "status": "missing",
        "age_s": None,
    }
    assert fresh != EntityFeatures("customer", "fresh", NOW)


def test_features_can_be_replaced_and_changed_like_a_dict(
    spec: TaxiwaySpec, store: SqliteStore
) -> None:
    [first, second] = lookup(spec, store, "customer", ["fresh", "fresh"], now=NOW)

    first.features["orders__count"] = FeatureValue(4, "present", 0.0)
    second.features = {}

    assert first.values()["orders__count"] == 4
    assert second.values() == {}
    assert EntityFeatures("customer", "x", NOW).features == {}


@settings(max_examples=3_000, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=-(2**53), max_value=2**53),
        st.integers(min_value=0, max_value=10**12).map(lambda ms: ms * 1000 + 500),  # ties
        st.integers(min_value=2**50 - 10**6, max_value=2**50 + 10**6),
    )
)
def test_ages_are_rounded_to_the_millisecond_exactly_as_round_does(microseconds: int) -> None:
    expected = round(microseconds / 1e6, 3)

    got = _seconds_3(microseconds)

    assert got == expected
    assert repr(got) == repr(expected)  # the same float, down to the sign of zero
