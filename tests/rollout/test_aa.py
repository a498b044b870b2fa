"""The rollout's promise under continuous looking, measured by simulation.

Each simulated rollout is looked at after every batch (20 looks; 1,000 rollouts per case). A look may decide
only once each arm has 100 units and 10 events (the issue's floor). The sequential
procedure (the confidence sequence of :mod:`taxiway.rollout.statistics.sequences`)
declares "candidate better" when its interval is above 0; the naive procedure runs a fixed
95% z-test at every look. Every kind of outcome and allocation below must pass the same
checks (the suite's conformance half):

- A/A (no true difference): at most 5% of rollouts ever declare the candidate better, and
  the interval covers the true difference (0) at every look in at least 95% of them;
- the naive repeated test declares a difference far more often (its false-promotion rate is
  the reason for the sequence);
- the guardrails' one-sided bound, at the whole alpha or at a quarter of it (four
  guardrails), crosses 0 on either side in at most that alpha of the A/A rollouts;
- with a true lift the interval leaves 0 on the better side in most rollouts, and covers the
  true lift at every look in at least 95% of them.

The rollouts are simulated by ``tests/rollout/simulation.py`` (vectorised over rollouts).
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.rollout.simulation import (
    ALLOCATIONS,
    ALPHA,
    LIFTS,
    OUTCOMES,
    Outcome,
    ever,
    naive_bounds,
    planned,
    sequence_bounds,
    simulate,
)

from taxiway.rollout.statistics import ArmStats, compare, half_width


@pytest.fixture(params=sorted(OUTCOMES))
def outcome(request: pytest.FixtureRequest) -> Outcome:
    return OUTCOMES[request.param]


@pytest.mark.parametrize("allocation", sorted(ALLOCATIONS))
def test_aa_promotes_at_most_alpha_and_covers_at_every_look(
    outcome: Outcome, allocation: str
) -> None:
    batches = ALLOCATIONS[allocation]
    looks = simulate(outcome, batches, lift=0.0, seed=16)
    low, high = sequence_bounds(looks, planned(batches))
    promoted = ever(low > 0, looks)
    covered = float(np.mean(np.all((low <= 0) & (high >= 0) | ~looks.decidable, axis=1)))
    assert promoted <= 0.05, f"{outcome.name}/{allocation}: promoted {promoted:.1%} of A/A runs"
    assert covered >= 0.95, f"{outcome.name}/{allocation}: covered 0 at every look {covered:.1%}"


@pytest.mark.parametrize("allocation", sorted(ALLOCATIONS))
def test_the_naive_repeated_test_declares_far_more_often(outcome: Outcome, allocation: str) -> None:
    looks = simulate(outcome, ALLOCATIONS[allocation], lift=0.0, seed=17)
    low, high = naive_bounds(looks)
    declared = ever((low > 0) | (high < 0), looks)
    seq_low, seq_high = sequence_bounds(looks, planned(ALLOCATIONS[allocation]))
    sequential = ever((seq_low > 0) | (seq_high < 0), looks)
    assert declared >= 0.15, f"{outcome.name}/{allocation}: naive declared {declared:.1%}"
    assert declared >= 4 * sequential


@pytest.mark.parametrize("allocation", sorted(ALLOCATIONS))
def test_a_true_lift_is_found_and_covered(outcome: Outcome, allocation: str) -> None:
    batches = ALLOCATIONS[allocation]
    lift = LIFTS[outcome.name]
    looks = simulate(outcome, batches, lift=lift, seed=18, runs=400)
    low, high = sequence_bounds(looks, planned(batches))
    found = float(np.mean(low[:, -1] > 0))
    harmed = ever(high < 0, looks)
    covered = float(np.mean(np.all((low <= lift) & (high >= lift) | ~looks.decidable, axis=1)))
    assert found >= 0.8, f"{outcome.name}/{allocation}: lift found by the end in {found:.1%}"
    assert harmed == 0.0
    assert covered >= 0.95, f"{outcome.name}/{allocation}: covered the lift {covered:.1%}"


def test_the_vectorised_simulation_computes_what_compare_does() -> None:
    batches = ALLOCATIONS["ramp"]
    looks = simulate(OUTCOMES["revenue"], batches, lift=1.0, seed=19, runs=4)
    low, high = sequence_bounds(looks, planned(batches))
    for run, look in [(0, 5), (1, 10), (3, 19)]:
        (mean_c, var_c), (mean_t, var_t) = looks.arms[run, look]
        control = ArmStats("control", int(looks.n_control[run, look]), 0, mean_c, var_c)
        candidate = ArmStats("candidate", int(looks.n_candidate[run, look]), 0, mean_t, var_t)
        result = compare(control, candidate, alpha=ALPHA, planned_n=planned(batches))
        assert result.low == pytest.approx(low[run, look], rel=1e-9)
        assert result.high == pytest.approx(high[run, look], rel=1e-9)


@pytest.mark.parametrize("allocation", sorted(ALLOCATIONS))
@pytest.mark.parametrize("alpha", [ALPHA, ALPHA / 4])
def test_the_one_sided_guardrail_bound_is_valid_at_every_look(
    outcome: Outcome, allocation: str, alpha: float
) -> None:
    batches = ALLOCATIONS[allocation]
    looks = simulate(outcome, batches, lift=0.0, seed=20)
    n = looks.n_control + looks.n_candidate
    width = half_width(looks.var, n, alpha, 2.0 * planned(batches), sides=1)
    assert ever(looks.diff - width > 0, looks) <= alpha
    assert ever(looks.diff + width < 0, looks) <= alpha
