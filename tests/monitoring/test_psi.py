"""PSI against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from taxiway.monitoring.statistics.psi import EPSILON, PopulationStability, psi_of_shares


def test_two_bins_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    got = psi_of_shares(np.array([0.5, 0.5]), np.array([0.25, 0.75]))
    assert got == pytest.approx(expected, rel=1e-12)


def test_an_empty_bin_is_floored_at_epsilon() -> None:
    expected = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + 0.5 * math.log(1.0 / 0.5)
    got = psi_of_shares(np.array([0.5, 0.5]), np.array([0.0, 1.0]))
    assert math.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-12)


def test_on_decile_bins_by_hand() -> None:
    # reference 0..99: ten bins of 0.1; current 50..149: bins 5-8 get 0.1 each, bin 9 gets 0.6
    expected = 5 * (EPSILON - 0.1) * math.log(EPSILON / 0.1) + 0.5 * math.log(6.0)
    got = PopulationStability().compare(np.arange(100.0), np.arange(50.0, 150.0))
    assert got == pytest.approx(expected, rel=1e-12)
