"""The confidence sequence: its shape (symmetric, always wider than a fixed-horizon interval,
tightest at the planned sample), its verdicts, and that any tuning keeps it valid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.rollout.simulation import ALLOCATIONS, OUTCOMES, ever, sequence_bounds, simulate

from taxiway.errors import RolloutError
from taxiway.rollout.statistics import (
    ArmStats,
    compare,
    confidence_sequence,
    difference_variance,
    half_width,
)
from taxiway.rollout.statistics.tails import normal_quantile

DERANDOMIZED = settings(derandomize=True, deadline=None)


@DERANDOMIZED
@given(
    diff=st.floats(min_value=-10, max_value=10),
    var=st.floats(min_value=1e-8, max_value=10),
    n_control=st.integers(min_value=2, max_value=10**7),
    n_candidate=st.integers(min_value=2, max_value=10**7),
    planned_n=st.integers(min_value=1, max_value=10**7),
    alpha=st.floats(min_value=0.001, max_value=0.2),
)
def test_wider_than_a_fixed_horizon_interval_and_centred(
    diff: float, var: float, n_control: int, n_candidate: int, planned_n: int, alpha: float
) -> None:
    low, high = confidence_sequence(diff, var, n_control, n_candidate, alpha, planned_n)
    fixed = normal_quantile(1 - alpha / 2) * math.sqrt(var)
    assert high - diff == pytest.approx(diff - low)
    assert (high - low) / 2 > fixed


def test_tightest_near_the_planned_sample() -> None:
    # relative to a fixed-horizon interval at the same n, the width is smallest near N*
    totals = np.geomspace(1_000, 100_000, 201)
    ratio = half_width(1.0 / totals, totals, 0.05, 10_000) / (1.96 * np.sqrt(1.0 / totals))
    assert totals[np.argmin(ratio)] == pytest.approx(10_000, rel=0.15)
    assert float(ratio.min()) == pytest.approx(1.55, abs=0.01)


@DERANDOMIZED
@given(st.integers(min_value=10, max_value=10**6), st.floats(min_value=0.001, max_value=0.2))
def test_one_sided_is_narrower_than_two_sided(n: int, alpha: float) -> None:
    one = half_width(1e-4, n, alpha, 10_000, sides=1)
    two = half_width(1e-4, n, alpha, 10_000, sides=2)
    assert one < two


def test_width_shrinks_as_units_come_in() -> None:
    totals = np.arange(200, 200_000, 200, dtype=np.float64)
    widths = half_width(1.0 / totals, totals, 0.05, 5_000)
    assert np.all(np.diff(widths) < 0)


def test_verdicts_follow_the_direction() -> None:
    control = ArmStats("control", 20_000, 2_000, 0.10, 0.09)
    better = ArmStats("candidate", 20_000, 2_400, 0.12, 0.1056)
    same = ArmStats("candidate", 20_000, 2_010, 0.1005, 0.0905)
    up = compare(control, better, planned_n=20_000)
    assert (up.significant_better, up.significant_worse) == (True, False)
    assert up.relative == pytest.approx(0.2)
    down = compare(control, better, planned_n=20_000, direction="decrease")
    assert (down.significant_better, down.significant_worse) == (False, True)
    neither = compare(control, same, planned_n=20_000)
    assert not neither.significant_better
    assert not neither.significant_worse
    assert neither.low < neither.diff < neither.high


def test_too_few_units_give_an_infinite_interval() -> None:
    one = ArmStats("candidate", 1, 1, 1.0, 0.0)
    result = compare(ArmStats("control", 500, 50, 0.1, 0.09), one)
    assert (result.low, result.high) == (-math.inf, math.inf)
    assert not result.significant_better
    assert not result.significant_worse
    zero = compare(ArmStats("control", 500, 0, 0.0, 0.0), ArmStats("candidate", 500, 0, 0.0, 0.0))
    assert zero.relative is None


def test_the_variance_is_the_larger_arm_variance() -> None:
    control = ArmStats("control", 900, 90, 0.1, 0.09)
    candidate = ArmStats("candidate", 100, 30, 0.3, 0.21)
    assert difference_variance(control, candidate) == pytest.approx(0.21 * (1 / 900 + 1 / 100))
    assert difference_variance(control, ArmStats("candidate", 0, 0, 0.0, 0.0)) == math.inf


def test_bad_alpha_or_plan_is_refused() -> None:
    with pytest.raises(RolloutError, match="alpha"):
        confidence_sequence(0.0, 1e-4, 100, 100, alpha=1.5)
    with pytest.raises(RolloutError, match="planned"):
        confidence_sequence(0.0, 1e-4, 100, 100, planned_n=0)


@pytest.mark.parametrize("planned_n", [100, 2_000, 50_000])
def test_any_tuning_keeps_a_aa_rollout_valid(planned_n: int) -> None:
    # tuned far below, at, and far above the rollout's real size: still <= 5% false promotions
    looks = simulate(OUTCOMES["conversion"], ALLOCATIONS["equal"], lift=0.0, seed=31, runs=600)
    low, high = sequence_bounds(looks, planned_n)
    assert ever(low > 0, looks) <= 0.05
    assert ever((low > 0) | (high < 0), looks) <= 0.05
