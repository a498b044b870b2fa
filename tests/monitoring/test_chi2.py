"""Chi-square of homogeneity against values computed by hand."""

from __future__ import annotations

import pytest

from taxiway.monitoring.statistics.chi2 import ChiSquare


def test_two_by_two_by_hand() -> None:
    # counts: ref a 3, b 1; cur a 1, b 3. Expected 2 everywhere: 4 cells of (1)^2 / 2 = 2
    ref = ["a", "a", "a", "b"]
    cur = ["a", "b", "b", "b"]
    assert ChiSquare().compare(ref, cur) == pytest.approx(2.0)


def test_a_category_new_in_the_window() -> None:
    # ref a 2; cur a 1, z 1. Totals: rows 2, 2; columns a 3, z 1; grand 4.
    # E = [[1.5, 0.5], [1.5, 0.5]]; (0.5^2/1.5) * 2 + (0.5^2/0.5) * 2 = 1/3 + 1
    assert ChiSquare().compare(["a", "a"], ["a", "z"]) == pytest.approx(4 / 3)
