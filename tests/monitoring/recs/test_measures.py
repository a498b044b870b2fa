"""The shared measures of recommended lists against brute force."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.monitoring.recs.findings import served_counts
from taxiway.monitoring.recs.measures import (
    coverage,
    decile_mix,
    gini,
    list_recall,
    popularity_deciles,
    wilson,
)
from taxiway.recommend import metrics

counts = st.lists(st.integers(0, 50), min_size=1, max_size=30)


@given(counts)
def test_gini_is_the_mean_absolute_difference_over_twice_the_mean(values: list[int]) -> None:
    n, total = len(values), sum(values)
    brute = (
        sum(abs(a - b) for a, b in itertools.product(values, values)) / (2 * n * total)
        if total
        else 0.0
    )
    assert gini(np.array(values)) == pytest_approx(brute)
    assert metrics.gini(np.array(values)) == gini(np.array(values))  # one definition


@given(counts)
def test_coverage_is_the_share_of_items_shown(values: list[int]) -> None:
    assert coverage(np.array(values)) == sum(v > 0 for v in values) / len(values)


@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 9)),
    st.sets(st.sampled_from("abcdef")),
)
def test_served_counts_cover_what_is_on_offer_and_whatever_else_was_shown(
    shown: dict[str, int], available: set[str]
) -> None:
    got = served_counts(shown, frozenset(available))
    assert len(got) == len(available | set(shown))
    assert got.sum() == sum(shown.values())


@given(st.integers(0, 200), st.integers(1, 200))
def test_wilson_holds_the_share_inside_zero_one(hits: int, n: int) -> None:
    hits = min(hits, n)
    low, high = wilson(hits, n)
    assert 0.0 <= low <= hits / n <= high <= 1.0


def test_list_recall_by_hand() -> None:
    assert list_recall(["a", "b", "c"], {"b", "d"}, 2) == 0.5
    assert list_recall(["a", "b", "c"], {"c"}, 2) == 0.0
    assert list_recall(["a"], set(), 5) is None


def pytest_approx(value: float | Mapping[str, float]) -> object:
    """``value`` (a number, or a mapping of numbers) to compare within 1e-12."""
    return pytest.approx(value, abs=1e-12)


@st.composite
def catalogs(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    ids = draw(st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=1, max_size=40,
                        unique=True))  # fmt: skip
    return ids, draw(st.lists(st.integers(0, 5), min_size=len(ids), max_size=len(ids)))


@given(catalogs())
def test_popularity_deciles_rank_most_first_ties_by_id(
    catalog: tuple[list[str], list[int]],
) -> None:
    ids, values = catalog
    n = len(ids)
    ranked = sorted(range(n), key=lambda i: (-values[i], ids[i]))
    brute = {ids[i]: 1 + rank * 10 // n for rank, i in enumerate(ranked)}
    got = popularity_deciles(np.array(values), ids)
    assert dict(zip(ids, got.tolist(), strict=True)) == brute


@given(catalogs(), st.data())
def test_decile_mix_counts_slots_and_interactions_per_decile(
    catalog: tuple[list[str], list[int]], data: st.DataObject
) -> None:
    ids, values = catalog
    n = len(ids)
    rows = data.draw(st.lists(st.lists(st.integers(-1, n - 1), min_size=3, max_size=3),
                              max_size=10))  # fmt: skip
    lists = np.array(rows, dtype=np.int32).reshape(len(rows), 3)
    mix = decile_mix(lists, np.array(values), ids)
    decile = dict(enumerate(popularity_deciles(np.array(values), ids).tolist()))
    slots = [decile[c] for row in rows for c in row if c >= 0]
    assert mix["slots"] == len(slots)
    assert mix["served"] == pytest_approx({str(d): slots.count(d) / len(slots) for d in set(slots)})
    total = sum(values)
    for d, share in mix["interactions"].items():
        mine = [v for i, v in enumerate(values) if decile[i] == int(d)]
        assert share == pytest_approx(sum(mine) / total if total else 0.0)
        assert mix["edges"][d] == [min(mine), max(mine)]
    assert set(mix["interactions"]) == {str(d) for d in decile.values()}
