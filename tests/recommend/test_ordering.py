"""Ordering: at most N per category, stable, scores kept; equal to a walk down each list."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.recommend.ordering import compact, max_per_category

N_ITEMS = 12


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(-1, N_ITEMS - 1), min_size=6, max_size=6), min_size=1, max_size=5
    ),
    st.lists(st.integers(-1, 3), min_size=N_ITEMS, max_size=N_ITEMS),
    st.integers(1, 4),
)
def test_max_per_category_equals_a_walk_down_each_list(
    lists: list[list[int]], categories: list[int], limit: int
) -> None:
    items = np.array(lists, dtype=np.int32)
    scores = np.arange(items.size, dtype=np.float32).reshape(items.shape)
    keep = max_per_category(items, np.array(categories, dtype=np.int32), limit)
    kept_items, kept_scores = compact(keep, items, scores)
    for row, candidates in enumerate(lists):
        counts: dict[int, int] = {}
        expected = []
        for slot, item in enumerate(candidates):
            if item < 0:
                continue
            group = categories[item]
            if group >= 0 and counts.get(group, 0) >= limit:
                continue
            counts[group] = counts.get(group, 0) + 1
            expected.append((item, float(scores[row, slot])))
        width = len(expected)
        assert kept_items[row, :width].tolist() == [i for i, _ in expected]
        assert kept_scores[row, :width].tolist() == [s for _, s in expected]
        assert (kept_items[row, width:] == -1).all()
