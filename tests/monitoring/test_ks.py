"""The KS statistic and its diagnostic p-value against values computed by hand."""

from __future__ import annotations

import math

import pytest

from taxiway.monitoring.statistics.ks import KolmogorovSmirnov, kolmogorov_survival, ks_pvalue


def test_d_by_hand() -> None:
    # at x = 2: F_ref = 2/4, F_cur = 0 -> 0.5, the largest gap
    assert KolmogorovSmirnov().compare([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


def test_ties_across_samples() -> None:
    # at x = 1: F_ref = 2/3, F_cur = 1/3; at x = 2: both 1 -> D = 1/3
    assert KolmogorovSmirnov().compare([1, 1, 2], [1, 2, 2]) == pytest.approx(1 / 3)


def test_pvalue_by_hand() -> None:
    # n = 50 * 50 / 100 = 25; lambda = (5 + 0.12 + 0.022) * 0.3 = 1.5426: the alternating series
    lam = (5 + 0.12 + 0.11 / 5) * 0.3
    expected = 2 * sum((-1) ** (k - 1) * math.exp(-2 * (k * lam) ** 2) for k in range(1, 101))
    assert ks_pvalue(0.3, 50, 50) == pytest.approx(expected, rel=1e-9)
    assert 0.0 < ks_pvalue(0.3, 50, 50) < ks_pvalue(0.1, 50, 50) <= 1.0


def test_kolmogorov_survival_at_known_points() -> None:
    # published values of the Kolmogorov distribution: Q(0.5) = 0.9639, Q(1) = 0.2700,
    # Q(1.36) = 0.0495 (the 5% critical value); the two series meet at 1
    assert kolmogorov_survival(0.5) == pytest.approx(0.9639, abs=1e-4)
    assert kolmogorov_survival(1.0) == pytest.approx(0.2700, abs=1e-4)
    assert kolmogorov_survival(1.36) == pytest.approx(0.0495, abs=1e-4)
    assert kolmogorov_survival(0.999999) == pytest.approx(kolmogorov_survival(1.0), abs=1e-5)
    assert kolmogorov_survival(0.05) == pytest.approx(1.0)
    assert kolmogorov_survival(0.005) == pytest.approx(1.0)  # the truncated series gave 0.40
