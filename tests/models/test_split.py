"""The time split never lets a validation time precede a training time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.errors import ModelError
from taxiway.models.split import time_split

times = st.lists(st.integers(0, 50), min_size=2, max_size=200).filter(lambda v: len(set(v)) >= 2)


@given(times, st.floats(0.01, 0.99))
def test_every_validation_time_is_after_every_training_time(
    values: list[int], share: float
) -> None:
    stamps = np.array(values, dtype="datetime64[D]")
    split = time_split(stamps, share)
    assert split.train.any()
    assert split.valid.any()
    assert (split.train ^ split.valid).all()  # each row on exactly one side
    assert stamps[split.train].max() < stamps[split.valid].min()
    assert stamps[split.valid].min() == split.cut
    # rows at one time never straddle the cut
    for t in np.unique(stamps):
        assert len(set(split.valid[stamps == t].tolist())) == 1


@given(st.integers(2, 100), st.floats(0.01, 0.99))
def test_the_held_out_share_of_times_is_the_requested_one(distinct: int, share: float) -> None:
    stamps = np.arange(distinct).astype("datetime64[D]")
    held = int(time_split(stamps, share).valid.sum())
    assert 1 <= held <= distinct - 1
    assert abs(held - distinct * share) <= 0.5 + 1e-9 or held in (1, distinct - 1)


def test_one_time_cannot_be_split() -> None:
    with pytest.raises(ModelError, match="at least two"):
        time_split(np.array(["2024-01-01"] * 5, dtype="datetime64[D]"), 0.2)


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 1.5])
def test_the_share_must_be_strictly_between_zero_and_one(share: float) -> None:
    with pytest.raises(ModelError, match="between 0 and 1"):
        time_split(np.arange(10).astype("datetime64[D]"), share)
