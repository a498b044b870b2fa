"""Interactions: ids as strings, the catalog's vocabulary, times in µs UTC, summed weights, and
a time cutoff that lets nothing at or after it through."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import SpecError
from taxiway.recommend.interactions import Interactions

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def test_int_and_string_ids_become_the_same_strings() -> None:
    table = pa.table(
        {
            "customer": [7, 3, 7],
            "product": ["b", "a", "a"],
            "ts": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)],
        }
    )
    data = Interactions.from_arrow(table, user="customer", item="product", at="ts")
    assert data.users.tolist() == ["3", "7"]
    assert data.items.tolist() == ["a", "b"]
    assert [data.users[u] for u in data.user] == ["7", "3", "7"]
    assert [data.items[i] for i in data.item] == ["b", "a", "a"]
    assert data.user_code("7") == data.user_code(7) == 1  # type: ignore[arg-type]
    assert data.user_code("8") == -1
    assert data.at.tolist() == [micros(T0) + h * 3_600_000_000 for h in range(3)]
    assert data.weight.tolist() == [1.0, 1.0, 1.0]
    assert data.events == ("",)
    assert data.event.tolist() == [0, 0, 0]


def test_the_catalog_gives_unseen_items_codes_and_drops_unknown_ones() -> None:
    table = pa.table({"u": ["x", "y"], "i": [1, 99], "ts": [T0, T0]})
    data = Interactions.from_arrow(table, user="u", item="i", at="ts", items=["1", "2", "3"])
    assert data.items.tolist() == ["1", "2", "3"]
    assert len(data) == 1  # item 99 is not in the catalog: a recommender cannot offer it
    assert data.items[data.item[0]] == "1"
    assert data.matrix().shape == (data.n_users, 3)


def test_weights_events_and_nulls() -> None:
    table = pa.table(
        {
            "u": ["a", "a", "b", None, "c"],
            "i": ["p", "p", "q", "p", "q"],
            "ts": pa.array([T0] * 5, pa.timestamp("ms")),  # naive: read as UTC
            "qty": [2, 3, 1, 5, None],
            "kind": ["view", "purchase", None, "view", "view"],
        }
    )
    data = Interactions.from_arrow(table, user="u", item="i", at="ts", weight="qty", event="kind")
    assert len(data) == 3  # the null user and the null weight rows are dropped
    assert data.events == ("", "purchase", "view")
    assert [data.events[e] for e in data.event] == ["view", "purchase", ""]
    assert data.at.tolist() == [micros(T0)] * 3
    assert data.matrix().toarray().tolist() == [[5.0, 0.0], [0.0, 1.0]]


def test_dates_and_time_zones_are_microseconds_utc() -> None:
    table = pa.table(
        {
            "u": [1, 2],
            "i": [1, 2],
            "d": [date(2025, 3, 1), date(2025, 3, 2)],
            "t": pa.array([T0, T0], pa.timestamp("s", tz="Europe/Paris")),
        }
    )
    by_date = Interactions.from_arrow(table, user="u", item="i", at="d")
    by_time = Interactions.from_arrow(table, user="u", item="i", at="t")
    assert by_date.at.tolist() == [micros(T0), micros(T0 + timedelta(days=1))]
    assert by_time.at.tolist() == [micros(T0)] * 2


def test_a_missing_column_or_a_bad_type_is_a_spec_error() -> None:
    table = pa.table({"u": [1], "i": [1], "ts": [T0], "when": ["yesterday"], "w": ["lots"]})
    with pytest.raises(SpecError, match="no column qty"):
        Interactions.from_arrow(table, user="u", item="i", at="ts", weight="qty")
    with pytest.raises(SpecError, match="not a timestamp"):
        Interactions.from_arrow(table, user="u", item="i", at="when")
    with pytest.raises(SpecError, match="not a number"):
        Interactions.from_arrow(table, user="u", item="i", at="ts", weight="w")


rows = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(0, 100),
        st.floats(0.5, 4.0, width=32),
    ),
    max_size=40,
)


def table_of(data: list[tuple[int, str, int, float]]) -> pa.Table:
    return pa.table(
        {
            "u": pa.array([r[0] for r in data], pa.int64()),
            "i": pa.array([r[1] for r in data], pa.string()),
            "ts": pa.array([T0 + timedelta(minutes=r[2]) for r in data], pa.timestamp("us", "UTC")),
            "w": pa.array([r[3] for r in data], pa.float32()),
        }
    )


@settings(max_examples=60, deadline=None)
@given(data=rows, cutoff=st.integers(-1, 101))
def test_before_keeps_exactly_what_happened_before_the_cutoff(
    data: list[tuple[int, str, int, float]], cutoff: int
) -> None:
    coded = Interactions.from_arrow(
        table_of(data), user="u", item="i", at="ts", weight="w", items=list("abcd")
    )
    at_us = micros(T0) + cutoff * 60_000_000
    earlier = coded.before(at_us)
    assert (earlier.at < at_us).all()  # nothing at or after the cutoff survives
    expected = sorted((str(u), i, m) for u, i, m, _ in data if m < cutoff)
    kept = sorted(
        (earlier.users[u], earlier.items[i], (t - micros(T0)) // 60_000_000)
        for u, i, t in zip(earlier.user, earlier.item, earlier.at, strict=True)
    )
    assert kept == expected
    assert earlier.users is coded.users
    assert earlier.items is coded.items  # same vocabularies: codes mean the same items


@settings(max_examples=60, deadline=None)
@given(data=rows)
def test_matrix_sums_the_weights_of_each_pair(data: list[tuple[int, str, int, float]]) -> None:
    coded = Interactions.from_arrow(table_of(data), user="u", item="i", at="ts", weight="w")
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for u, i, _, w in data:
        sums[(str(u), i)] += w
    matrix = coded.matrix()
    assert matrix.dtype == np.float32
    assert matrix.shape == (coded.n_users, coded.n_items)
    for (user, item), total in sums.items():
        value = matrix[coded.user_code(user), coded.item_code(item)]
        assert value == pytest.approx(total, rel=1e-5)
    assert matrix.nnz == len(sums)


def test_where_refuses_a_mask_of_another_length() -> None:
    coded = Interactions.from_arrow(table_of([(1, "a", 1, 1.0)]), user="u", item="i", at="ts")
    with pytest.raises(ValueError, match="mask has shape"):
        coded.where(np.ones(3, dtype=bool))
