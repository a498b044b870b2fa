"""Histories as of a time: whether a user has anything before ``at`` agrees with the rows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.recommend.history import Histories
from taxiway.recommend.interactions import Interactions


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 30)), max_size=40),
    user=st.integers(-2, 6),
    at=st.integers(-1, 32),
)
def test_has_before_agrees_with_the_rows_as_of(
    rows: list[tuple[int, int, int]], user: int, at: int
) -> None:
    users = np.array([r[0] for r in rows], dtype=np.int32)
    data = Interactions(
        user=users,
        item=np.array([r[1] for r in rows], dtype=np.int32),
        at=np.array([r[2] for r in rows], dtype=np.int64),
        weight=np.ones(len(rows), dtype=np.float32),
        event=np.zeros(len(rows), dtype=np.int8),
        users=np.array([str(u) for u in range(5)], dtype=object),
        items=np.array([str(i) for i in range(6)], dtype=object),
        events=("",),
    )
    histories = Histories.of(data)
    brute = any(u == user and t < at for u, _, t in rows)
    assert histories.has_before(user, at) is brute
    if 0 <= user < 5:
        assert bool(len(histories.as_of(np.array([user], np.int32), at).item)) is brute
