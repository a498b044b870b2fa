"""CUPED: with a correlated pre-period outcome the variance falls by about corr², the
difference between arms keeps its mean, and units without a pre-period value keep theirs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.rollout.statistics import ArmStats, compare, cuped_adjust, variance_reduction

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def units(
    rng: np.random.Generator, n: int, corr: float, lift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pre-period outcome x and outcome y (with ``lift`` added), correlated by ``corr``."""
    x = rng.normal(50.0, 10.0, n)
    y = 50.0 + corr * (x - 50.0) + np.sqrt(1 - corr**2) * rng.normal(0.0, 10.0, n) + lift
    return x, y


@settings(derandomize=True, deadline=None, max_examples=40)
@given(SEEDS, st.floats(min_value=0.2, max_value=0.95))
def test_variance_falls_by_the_squared_correlation(seed: int, corr: float) -> None:
    x, y = units(np.random.default_rng(seed), 20_000, corr)
    adjusted, theta = cuped_adjust(y, x)
    assert theta == pytest.approx(corr, abs=0.03)
    assert variance_reduction(y, adjusted) == pytest.approx(corr**2, abs=0.03)
    assert adjusted.mean() == pytest.approx(y.mean())


@settings(derandomize=True, deadline=None, max_examples=20)
@given(SEEDS)
def test_an_unrelated_covariate_removes_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, x = rng.normal(size=20_000), rng.normal(size=20_000)
    adjusted, _ = cuped_adjust(y, x)
    assert variance_reduction(y, adjusted) < 0.002


def test_the_difference_keeps_its_mean_and_narrows() -> None:
    # 300 experiments, 2,000 units per arm, a true lift of 1 and a covariate at corr 0.8:
    # the adjusted difference is unbiased, its spread ~0.6 of the raw one, and the
    # interval built on adjusted arms covers the lift and is narrower
    rng = np.random.default_rng(7)
    raw, adjusted_diffs, covered, narrower = [], [], 0, 0
    for _ in range(300):
        x_c, y_c = units(rng, 2_000, 0.8)
        x_t, y_t = units(rng, 2_000, 0.8, lift=1.0)
        adjusted, _ = cuped_adjust(np.concatenate([y_c, y_t]), np.concatenate([x_c, x_t]))
        a_c, a_t = adjusted[:2_000], adjusted[2_000:]
        raw.append(y_t.mean() - y_c.mean())
        adjusted_diffs.append(a_t.mean() - a_c.mean())
        plain = compare(ArmStats.of("control", y_c), ArmStats.of("candidate", y_t), planned_n=2_000)
        cuped = compare(ArmStats.of("control", a_c), ArmStats.of("candidate", a_t), planned_n=2_000)
        covered += cuped.low <= 1.0 <= cuped.high
        narrower += (cuped.high - cuped.low) < (plain.high - plain.low)
    assert np.mean(adjusted_diffs) == pytest.approx(1.0, abs=0.03)
    assert np.std(adjusted_diffs) / np.std(raw) == pytest.approx(0.6, abs=0.08)
    assert covered / 300 >= 0.95
    assert narrower == 300


def test_units_without_a_pre_period_value_keep_their_outcome() -> None:
    rng = np.random.default_rng(3)
    x, y = units(rng, 1_000, 0.7)
    missing = rng.random(1_000) < 0.3
    adjusted, theta = cuped_adjust(y, np.where(missing, np.nan, x))
    np.testing.assert_allclose(adjusted[missing], y[missing])
    # theta is the slope over the units that have a pre-period value
    known_x, known_y = x[~missing], y[~missing]
    slope = np.cov(known_x, known_y)[0, 1] / known_x.var(ddof=1)
    assert theta == pytest.approx(slope)


def test_no_usable_covariate_changes_nothing() -> None:
    y = np.array([1.0, 5.0, 2.0])
    for x in ([np.nan] * 3, [4.0, 4.0, np.nan]):
        adjusted, theta = cuped_adjust(y, x)
        assert theta == 0.0
        np.testing.assert_array_equal(adjusted, y)
    assert variance_reduction([2.0, 2.0], [2.0, 2.0]) == 0.0


def test_one_pre_period_value_per_unit() -> None:
    with pytest.raises(ValueError, match="one per unit"):
        cuped_adjust([1.0, 2.0], [1.0])
