"""The global time split: nothing at or after the cutoff reaches training, ever."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import ModelError
from taxiway.recommend.interactions import Interactions
from taxiway.recommend.split import default_cutoff, from_micros, time_split, to_micros


def _data(rows: list[tuple[int, int, int]], n_users: int = 5, n_items: int = 6) -> Interactions:
    user, item, at = (np.array(c) for c in zip(*rows, strict=True))
    return Interactions(
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        at=at.astype(np.int64),
        weight=np.ones(len(rows), np.float32),
        event=np.zeros(len(rows), np.int8),
        users=np.array([f"u{i}" for i in range(n_users)], dtype=object),
        items=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        events=("",),
    )


_rows = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 10_000)), min_size=2, max_size=60
)


@settings(max_examples=300, deadline=None)
@given(_rows, st.one_of(st.none(), st.integers(-5, 10_005)))
def test_no_training_interaction_is_at_or_after_the_cutoff(
    rows: list[tuple[int, int, int]], cutoff: int | None
) -> None:
    data = _data(rows)
    try:
        split = time_split(data, cutoff)
    except ModelError:
        # only when one side is empty or no user is on both sides
        cut = default_cutoff(data.at) if cutoff is None else cutoff
        before = {u for u, _, t in rows if t < cut}
        after = {u for u, _, t in rows if t >= cut}
        assert not before or not (before & after)
        return
    assert (split.train.at < split.cutoff_us).all()
    assert (split.test.at >= split.cutoff_us).all()
    assert len(split.train) + len(split.test) == len(rows)
    # users judged: in both halves; cold users: after only
    before = {u for u, _, t in rows if t < split.cutoff_us}
    after = {u for u, _, t in rows if t >= split.cutoff_us}
    assert split.evaluated_users.tolist() == sorted(before & after)
    assert split.cold_users == len(after - before)
    items_before = {i for _, i, t in rows if t < split.cutoff_us}
    items_after = {i for _, i, t in rows if t >= split.cutoff_us}
    assert split.cold_items == len(items_after - items_before)
    relevant = split.relevant().toarray()
    for row, user in enumerate(split.evaluated_users.tolist()):
        wanted = {i for u, i, t in rows if u == user and t >= split.cutoff_us}
        assert set(np.flatnonzero(relevant[row]).tolist()) == wanted


def test_the_default_cutoff_leaves_the_last_tenth_of_the_time_range() -> None:
    assert default_cutoff(np.array([1_000, 2_000, 11_000], dtype=np.int64)) == 10_000


def test_a_cutoff_outside_the_data_says_the_fix() -> None:
    data = _data([(0, 0, 10), (0, 1, 20)])
    with pytest.raises(ModelError, match=r"recommend\.split\.cutoff"):
        time_split(data, datetime(1970, 1, 1, tzinfo=UTC))


def test_micros_round_trip_and_naive_means_utc() -> None:
    moment = datetime(2025, 12, 1, 13, 5, 7, 123456, tzinfo=UTC)
    assert from_micros(to_micros(moment)) == moment
    assert to_micros(moment.replace(tzinfo=None)) == to_micros(moment)
