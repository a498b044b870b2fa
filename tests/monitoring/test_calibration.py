"""Calibrated thresholds: their shape in n, the reference's own noise, the interpolation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import MonitoringError
from taxiway.monitoring.calibration import (
    SIZES,
    calibrate,
    resample_cells,
    threshold_for,
    true_shares,
)
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile
from taxiway.monitoring.statistics import STATISTICS

N_REF = 50_000
CHI2_2DF_99 = 9.2103  # the 99th percentile of chi-square with 2 degrees of freedom
CHI2_9DF_99 = 21.666  # ... with 9 (ten deciles)
CHI2_2DF_999 = 13.816  # the 99.9th percentiles
CHI2_9DF_999 = 27.877


@pytest.fixture(scope="module")
def normal_reference() -> NumericProfile:
    return NumericProfile.reference(np.random.default_rng(0).normal(size=N_REF))


@pytest.fixture(scope="module")
def three_labels() -> CategoricalProfile:
    labels = np.random.default_rng(1).choice(["a", "b", "c"], size=N_REF, p=[0.5, 0.3, 0.2])
    return CategoricalProfile.reference(labels)


@pytest.mark.parametrize("name", ["psi", "jensen_shannon", "ks", "wasserstein"])
def test_numeric_thresholds_fall_with_n_then_flatten(
    normal_reference: NumericProfile, name: str
) -> None:
    table = calibrate(normal_reference, STATISTICS[name], resamples=1_000)
    values = [table[n] for n in SIZES]
    assert all(a > b for a, b in itertools.pairwise(values[:4])), values
    assert values[4] < 1.1 * values[3], values  # the last step is within the percentile's noise
    # beyond the reference's size the reference's own noise sets a floor: from 100k to 1M
    # the threshold falls far less than from 200 to 1,000
    assert values[3] / values[4] < values[0] / values[1]


def test_chi2_threshold_is_chi2_at_every_n_because_the_reference_noise_is_in(
    three_labels: CategoricalProfile,
) -> None:
    """Between two independent samples, chi-square of homogeneity is ~ chi2(k - 1) whatever
    their sizes. Resampling the reference alone would give chi2 * N / (N + n): 0.44 at 1M.
    From n ~ N the reference's error alone sets the floor: its 99.9th percentile, chi2(2)'s
    13.8 times n / (N + n)."""
    table = calibrate(three_labels, STATISTICS["chi2"], resamples=1_000)
    for n in SIZES:
        floor = CHI2_2DF_999 * n / (N_REF + n)
        assert table[n] == pytest.approx(max(CHI2_2DF_99, floor), rel=0.2), (n, table)


def test_the_floor_is_the_reference_error_alone(normal_reference: NumericProfile) -> None:
    without = calibrate(normal_reference, STATISTICS["psi"], floor_resamples=0)
    floored = calibrate(normal_reference, STATISTICS["psi"])
    assert floored[200] == pytest.approx(without[200], rel=0.2)  # the window noise dominates
    assert floored[1_000_000] > without[1_000_000]  # the reference's error does
    # PSI of the reference against its true shares: ~ chi2(9) / N at the 99.9th percentile
    assert floored[1_000_000] == pytest.approx(CHI2_9DF_999 / N_REF, rel=0.3)


def test_psi_threshold_follows_one_over_n_plus_one_over_big_n(
    normal_reference: NumericProfile,
) -> None:
    """PSI between samples of n and N rows on ten equal bins is ~ chi2(9) * (1/n + 1/N)."""
    table = calibrate(normal_reference, STATISTICS["psi"], resamples=1_000)
    for n in (1_000, 10_000, 100_000):
        assert table[n] == pytest.approx(CHI2_9DF_99 * (1 / n + 1 / N_REF), rel=0.25), n


def test_simulated_windows_have_n_rows_and_the_reference_shares() -> None:
    reference = NumericProfile.reference(np.random.default_rng(2).exponential(size=10_000))
    rng = np.random.default_rng(3)
    cells = resample_cells(reference, 5_000, true_shares(reference, 400, rng), rng)
    assert cells.windows.shape == (400, 102)
    assert cells.windows.sum(axis=1).tolist() == [5_000.0] * 400
    mean_shares = cells.windows.sum(axis=0) / cells.windows.sum()
    assert mean_shares[1:-1] == pytest.approx(reference.counts / reference.known, abs=1e-3)
    # the cells beyond the reference's extremes hold about 1 / (N + 1) of the mass each
    assert 0 < mean_shares[0] < 5 / 10_000
    assert 0 < mean_shares[-1] < 5 / 10_000


def test_same_seed_same_table_and_the_kind_is_checked(three_labels: CategoricalProfile) -> None:
    assert calibrate(three_labels, STATISTICS["linf"], seed=4) == calibrate(
        three_labels, STATISTICS["linf"], seed=4
    )
    with pytest.raises(MonitoringError, match="cannot be calibrated"):
        calibrate(three_labels, STATISTICS["ks"])
    with pytest.raises(ValueError, match="empty"):
        calibrate(three_labels.empty_like(), STATISTICS["chi2"])


def test_threshold_for_interpolates_in_log_log() -> None:
    table = {200: 0.2, 2_000: 0.02, 20_000: 0.01}
    assert threshold_for(table, 200) == 0.2
    assert threshold_for(table, 2_000) == 0.02
    assert threshold_for(table, math.isqrt(200 * 2_000)) == pytest.approx(
        math.sqrt(0.2 * 0.02), rel=1e-3
    )
    assert threshold_for(table, 10**9) == 0.01  # flat above the largest size
    assert threshold_for(table, 20) == pytest.approx(2.0)  # falling: the slope carries on
    assert threshold_for({200: 1.0, 1_000: 2.0}, 20) == 1.0  # rising: clamped
    assert threshold_for({200: 0.0, 1_000: 0.0}, 500) == 0.0
    with pytest.raises(MonitoringError, match="empty"):
        threshold_for({}, 10)


@settings(derandomize=True, deadline=None, max_examples=60)
@given(
    st.lists(st.floats(min_value=1e-6, max_value=10.0), min_size=2, max_size=5),
    st.integers(min_value=1, max_value=10**8),
)
def test_threshold_for_stays_between_neighbours(values: list[float], n: int) -> None:
    falling = sorted(values, reverse=True)
    table = dict(zip(SIZES, falling, strict=False))
    got = threshold_for(table, n)
    sizes = sorted(table)
    if sizes[0] <= n <= sizes[-1]:
        assert min(falling) - 1e-12 <= got <= max(falling) + 1e-12
    assert got >= table[sizes[-1]] - 1e-12
