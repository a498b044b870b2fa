"""The normal and chi-square tails against published quantiles and closed forms."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.rollout.statistics.tails import chi2_sf, gamma_q, normal_quantile, normal_sf

# (x, df, upper tail): the chi-square table's critical values
CHI2_TABLE = [
    (3.841458820694124, 1, 0.05),
    (6.634896601021214, 1, 0.01),
    (10.827566170662733, 1, 0.001),
    (0.454936423119572, 1, 0.5),
    (5.991464547107979, 2, 0.05),
    (13.815510557964274, 2, 0.001),
    (7.814727903251178, 3, 0.05),
    (11.070497693516351, 5, 0.05),
    (18.307038053275146, 10, 0.05),
    (124.34211340400407, 100, 0.05),
    (0.0157907740934312, 1, 0.9),
]


@pytest.mark.parametrize(("x", "df", "tail"), CHI2_TABLE)
def test_chi2_matches_the_table(x: float, df: int, tail: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(tail, rel=1e-9)


@pytest.mark.parametrize(
    ("z", "tail"),
    [(1.959963984540054, 0.025), (1.6448536269514722, 0.05), (3.090232306167813, 0.001)],
)
def test_normal_matches_the_table(z: float, tail: float) -> None:
    assert normal_sf(z) == pytest.approx(tail, rel=1e-12)
    assert normal_quantile(1 - tail) == pytest.approx(z, rel=1e-9)


@settings(derandomize=True, deadline=None)
@given(st.floats(min_value=1e-6, max_value=200.0))
def test_closed_forms(x: float) -> None:
    # df 2: exp(-x/2); df 1: P(|Z| > sqrt x) = erfc(sqrt(x / 2))
    assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-10, abs=1e-300)
    assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9, abs=1e-300)
    # df 4: exp(-x/2) (1 + x/2)
    assert chi2_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-10, abs=1e-300)


@settings(derandomize=True, deadline=None)
@given(
    st.floats(min_value=0.0, max_value=300.0),
    st.floats(min_value=0.0, max_value=50.0),
    st.integers(min_value=1, max_value=60),
)
def test_a_tail_is_a_probability_that_falls_with_x(x: float, dx: float, df: int) -> None:
    here, further = chi2_sf(x, df), chi2_sf(x + dx, df)
    assert 0.0 <= further <= here <= 1.0


def test_the_series_and_the_fraction_agree_where_they_meet() -> None:
    # gamma_q switches method at x = a + 1: both sides of the switch agree
    for a in (0.5, 1.0, 3.5, 20.0):
        below, above = gamma_q(a, a + 1 - 1e-9), gamma_q(a, a + 1 + 1e-9)
        assert below == pytest.approx(above, rel=1e-8)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="degree of freedom"):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError, match="probability"):
        normal_quantile(1.0)
