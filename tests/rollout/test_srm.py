"""Sample ratio mismatch: the chi-square on units per arm flags a broken split and lets a
fair one run; the sequential test, which halts a rollout, stays valid at every look."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import RolloutError
from taxiway.rollout.analysis import split_check
from taxiway.rollout.statistics.srm import both_arms_check, sequential_srm, srm_test
from taxiway.rollout.statistics.tails import chi2_sf

HALF = {"control": 0.5, "candidate": 0.5}
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def halted_share(seed: int, units: int, candidate_share: float, experiments: int = 200) -> float:
    """The share of ``experiments`` rollouts of ``units`` units, each sent to the candidate
    with probability ``candidate_share``, whose 50/50 split the test halts."""
    rng = np.random.default_rng(seed)
    candidates = rng.binomial(units, candidate_share, experiments)
    halts = [
        srm_test({"control": units - int(c), "candidate": int(c)}, HALF).halt for c in candidates
    ]
    return float(np.mean(halts))


def test_a_52_48_split_of_10k_units_halts_and_a_fair_one_runs() -> None:
    broken = srm_test({"control": 5_200, "candidate": 4_800}, HALF)
    assert broken.chi2 == pytest.approx(16.0)
    assert broken.p_value == pytest.approx(chi2_sf(16.0, 1))
    assert broken.p_value < 0.001
    assert broken.halt
    assert srm_test({"control": 5_000, "candidate": 5_000}, HALF).ok


@settings(derandomize=True, deadline=None, max_examples=30)
@given(SEEDS)
def test_over_seeds_a_52_48_bug_is_caught_and_a_fair_split_is_not(seed: int) -> None:
    # At 10k units a 52/48 bug is caught 76% of the time (the test's power at p < 0.001),
    # at 20k units 99%; a fair split halts in 0.1% of rollouts.
    assert halted_share(seed, 10_000, 0.48) >= 0.6
    assert halted_share(seed, 20_000, 0.48) >= 0.95
    assert halted_share(seed, 10_000, 0.50) <= 0.02


def test_steps_pool_their_expected_counts() -> None:
    counts = [{"control": 990, "candidate": 10}, {"control": 1_850, "candidate": 150}]
    shares = [{"control": 99, "candidate": 1}, {"control": 95, "candidate": 5}]
    result = srm_test(counts, shares)
    # expected: candidate 1000 * 0.01 + 2000 * 0.05 = 110, control 2890; observed 160, 2840
    assert result.expected == pytest.approx({"control": 2_890.0, "candidate": 110.0})
    assert result.observed == {"control": 2_840, "candidate": 160}
    assert result.chi2 == pytest.approx(50**2 / 110 + 50**2 / 2_890)
    assert result.df == 1
    assert result.halt


def test_an_arm_that_receives_nobody_is_caught_by_its_expected_count() -> None:
    # every arm *expects* 8 units or more: the candidate expects 20 and gets none
    result = srm_test({"control": 2_000, "candidate": 0}, {"control": 99, "candidate": 1})
    assert result.enough_units
    assert result.halt


def test_no_halt_before_every_arm_expects_8_units() -> None:
    result = srm_test({"control": 12, "candidate": 0}, HALF)
    assert result.p_value < 0.001
    assert not result.enough_units
    assert result.ok


def test_units_in_an_arm_that_should_get_none_are_a_mismatch() -> None:
    result = srm_test({"control": 3, "candidate": 500}, {"control": 0, "candidate": 100})
    assert result.p_value == 0.0
    assert result.halt


def test_three_arms_have_two_degrees_of_freedom() -> None:
    result = srm_test({"a": 100, "b": 100, "c": 100}, {"a": 1, "b": 1, "c": 1})
    assert (result.df, result.chi2, result.p_value) == (2, 0.0, 1.0)


def test_counts_and_shares_of_different_shapes_are_refused() -> None:
    with pytest.raises(RolloutError, match="both"):
        srm_test({"control": 1}, [HALF])
    with pytest.raises(RolloutError, match="step"):
        srm_test([{"control": 1}], [HALF, HALF])
    with pytest.raises(RolloutError, match="shares"):
        srm_test({"control": 1}, {"control": 0, "candidate": 0})


def test_units_in_both_arms_halt_at_1_percent() -> None:
    assert both_arms_check(99, 10_000).ok
    assert not both_arms_check(100, 10_000).ok
    assert both_arms_check(0, 0).ok


def test_the_sequential_test_is_valid_at_every_look() -> None:
    # 500 fair rollouts looked at after every 500 units, 20 looks: the sequential test's
    # p-value ever falls under 0.05 in at most 5% of them; a chi-square at every look does
    # more often.
    rng = np.random.default_rng(22)
    candidates = rng.binomial(500, 0.5, (500, 20)).cumsum(axis=1)
    units = 500 * np.arange(1, 21)
    sequential = repeated = 0
    for row in candidates:
        looks = [
            {"control": int(n - c), "candidate": int(c)} for n, c in zip(units, row, strict=True)
        ]
        sequential += any(sequential_srm(look, HALF).p_value < 0.05 for look in looks)
        repeated += any(srm_test(look, HALF).p_value < 0.05 for look in looks)
    assert sequential / 500 <= 0.05
    assert repeated / 500 >= 0.15  # 26% with this seed, against 2.2%


def test_the_sequential_test_catches_a_bug_and_multiplies_over_steps() -> None:
    bug = {"control": 5_400, "candidate": 4_600}
    assert not sequential_srm(bug, HALF).ok
    one = sequential_srm({"control": 5_100, "candidate": 4_900}, HALF)
    two = sequential_srm([{"control": 5_100, "candidate": 4_900}] * 2, [HALF, HALF])
    assert two.bayes_factor == pytest.approx(one.bayes_factor**2)
    stray = sequential_srm({"control": 1, "candidate": 10}, {"control": 0, "candidate": 1})
    assert (stray.ok, stray.p_value) == (False, 0.0)


SHARES = (1.0, 5.0, 10.0, 25.0, 50.0)


def first_halts(seed: int, runs: int, looks: int, batch: int, bias: float = 1.0) -> np.ndarray:
    """Per simulated rollout (steps 1-5-10-25-50%, ``looks`` checks a step, each after
    ``batch`` new units whose candidate share is the step's times ``bias``), whether each rule
    ever halted it, through the analysis's own split check: columns chi-square, sequential."""
    rng = np.random.default_rng(seed)
    shares = np.array(SHARES)
    so_far = rng.binomial(batch, shares[None, :, None] * bias / 100, (runs, len(shares), looks))
    so_far = so_far.cumsum(axis=2)
    halted = np.zeros((runs, 2), bool)
    for run in range(runs):
        for index in range(len(shares)):
            done = [{"control": looks * batch - int(c), "candidate": int(c)}
                    for c in so_far[run, :index, -1]]  # fmt: skip
            for look in range(looks):
                here = int(so_far[run, index, look])
                counts = [*done, {"control": (look + 1) * batch - here, "candidate": here}]
                evidence, ok = split_check(counts, list(SHARES[: index + 1]))
                halted[run] |= (evidence["chi2_halt"], not ok)
    return halted


def test_a_correct_assignment_checked_after_every_batch_rarely_halts() -> None:
    # 200 A/A rollouts, 50 checks each: the sequential rule halts at most 1% of them (its
    # bound is 0.1%); the chi-square at every check is not valid under looking (its rate grows
    # with the checks: 2.4% over 200 checks in bench/rollout.py --part srm)
    halted = first_halts(16, runs=200, looks=10, batch=200)
    assert halted[:, 1].mean() <= 0.01
    assert halted[:, 0].mean() >= halted[:, 1].mean()


def test_an_assignment_bug_is_still_caught_by_the_sequential_rule() -> None:
    halted = first_halts(17, runs=20, looks=10, batch=200, bias=0.8)
    assert halted[:, 1].all()
