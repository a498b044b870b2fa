"""Wasserstein (in reference-IQR units) against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from taxiway.monitoring.statistics.wasserstein import Wasserstein, wasserstein_distance


def test_a_shift_of_one_iqr_is_one() -> None:
    # reference 0..4: IQR = 3 - 1 = 2; shifting every value by 2 moves all mass by 2
    assert Wasserstein().compare([0, 1, 2, 3, 4], [2, 3, 4, 5, 6]) == pytest.approx(1.0)


def test_raw_distance_by_hand() -> None:
    # CDFs of {0, 1} and {0, 3}: differ by 1/2 on [1, 3): area 1
    assert wasserstein_distance(np.array([0.0, 1.0]), np.array([0.0, 3.0])) == pytest.approx(1.0)


def test_iqr_zero_falls_back_to_the_standard_deviation() -> None:
    # reference [0, 0, 0, 0, 10]: IQR 0, sd = 4; current all 0: W1 = 10 / 5 = 2 -> 2 / 4
    assert Wasserstein().compare([0, 0, 0, 0, 10], [0, 0, 0]) == pytest.approx(0.5)


def test_a_constant_reference_gives_the_raw_distance() -> None:
    assert Wasserstein().compare([5.0, 5.0], [7.0]) == pytest.approx(2.0)


def test_not_symmetric_after_normalisation() -> None:
    narrow, wide = [0, 1, 2, 3, 4], [0, 2, 4, 6, 8]
    # W1 = (0 + 1 + 2 + 3 + 4) / 5 = 2; IQRs 2 and 4
    assert Wasserstein().compare(narrow, wide) == pytest.approx(1.0)
    assert Wasserstein().compare(wide, narrow) == pytest.approx(0.5)
