"""L-infinity distance between category shares against values computed by hand."""

from __future__ import annotations

import pytest

from taxiway.monitoring.statistics.linf import LInfinity


def test_largest_share_change_by_hand() -> None:
    # ref a 0.5, b 0.5; cur a 0.25, b 0.75 -> 0.25
    assert LInfinity().compare(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(0.25)


def test_a_category_new_in_the_window() -> None:
    # ref a 1.0; cur a 0.4, z 0.6 -> max(0.6, 0.6)
    assert LInfinity().compare(["a"], ["a", "a", "z", "z", "z"]) == pytest.approx(0.6)


def test_disjoint_categories_give_the_largest_share() -> None:
    assert LInfinity().compare(["a", "b"], ["c", "d"]) == pytest.approx(0.5)
    assert LInfinity().compare(["a"], ["c"]) == pytest.approx(1.0)
