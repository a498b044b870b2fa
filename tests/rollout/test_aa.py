"""The rollout's promise under continuous looking, measured by simulation.

Each simulated rollout is looked at after every batch (``LOOKS`` looks). A look may decide
only once each arm has 100 units and 10 events (the issue's floor). The sequential
procedure (the confidence sequence of :mod:`taxiway.rollout.statistics.sequences`)
declares "candidate better" when its interval is above 0; the naive procedure runs a fixed
95% z-test at every look. Every kind of outcome and allocation below must pass the same
checks (the suite's conformance half):

- A/A (no true difference): at most 5% of rollouts ever declare the candidate better, and
  the interval covers the true difference (0) at every look in at least 95% of them;
- the naive repeated test declares a difference far more often (its false-promotion rate is
  the reason for the sequence);
- with a true lift the interval leaves 0 on the better side in most rollouts, and covers the
  true lift at every look in at least 95% of them.

The simulation is vectorised over rollouts: one loop over looks, numpy over rollouts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from taxiway.rollout.statistics import ArmStats, compare, half_width
from taxiway.rollout.statistics.tails import normal_quantile

Floats = npt.NDArray[np.float64]
RUNS = 1_000
LOOKS = 20
ALPHA = 0.05
MIN_UNITS = 100
MIN_EVENTS = 10


@dataclass(frozen=True)
class Outcome:
    """An outcome per unit: its true mean and a sampler ``draw(rng, shape, lift)``."""

    name: str
    mean: float
    draw: Callable[[np.random.Generator, tuple[int, int], float], Floats]


def _conversion(rng: np.random.Generator, shape: tuple[int, int], lift: float) -> Floats:
    return (rng.random(shape) < 0.10 + lift).astype(np.float64)


def _revenue(rng: np.random.Generator, shape: tuple[int, int], lift: float) -> Floats:
    # 10% of units spend, an exponential amount of mean 50: skewed, with many zeros
    spent = rng.random(shape) < 0.10
    return np.where(spent, rng.exponential(50.0, shape), 0.0) + lift


def _score(rng: np.random.Generator, shape: tuple[int, int], lift: float) -> Floats:
    return rng.normal(10.0 + lift, 3.0, shape)


OUTCOMES = {
    "conversion": Outcome("conversion", 0.10, _conversion),
    "revenue": Outcome("revenue", 5.0, _revenue),
    "score": Outcome("score", 10.0, _score),
}
LIFTS = {"conversion": 0.045, "revenue": 3.0, "score": 0.5}
EQUAL = [(100, 100)] * LOOKS
"""Units per look (control, candidate): an even split."""
RAMP = [(1000 - c, c) for c in [10] * 4 + [50] * 4 + [100] * 4 + [250] * 4 + [500] * 4]
"""A rollout's steps 1, 5, 10, 25, 50% of 1,000 units per look, four looks each."""
ALLOCATIONS = {"equal": EQUAL, "ramp": RAMP}


@dataclass(frozen=True)
class Looks:
    """Cumulative per-arm numbers at each look: shape (runs, looks)."""

    n_control: Floats
    n_candidate: Floats
    diff: Floats
    var: Floats  # the library's: the larger arm variance (sequences.difference_variance)
    var_own: Floats  # each arm's own variance over its own units (the textbook naive test's)
    events: Floats  # the smaller arm's events
    decidable: npt.NDArray[np.bool_]
    arms: Floats  # (runs, looks, arm, [mean, var]): to check the library on a few looks


def simulate(
    outcome: Outcome, batches: list[tuple[int, int]], lift: float, seed: int, runs: int = RUNS
) -> Looks:
    rng = np.random.default_rng(seed)
    sums = np.zeros((2, runs))
    squares = np.zeros((2, runs))
    events = np.zeros((2, runs))
    counts = np.zeros(2)
    rows: dict[str, list[Floats]] = {k: [] for k in ("nc", "nt", "diff", "var", "own", "ev")}
    arms: list[Floats] = []
    for batch in batches:
        for arm, size in enumerate(batch):
            values = outcome.draw(rng, (runs, size), lift if arm == 1 else 0.0)
            sums[arm] += values.sum(axis=1)
            squares[arm] += (values * values).sum(axis=1)
            events[arm] += np.count_nonzero(values, axis=1)
            counts[arm] += size
        means = sums / counts[:, None]
        variances = (squares - counts[:, None] * means**2) / (counts[:, None] - 1)
        rows["nc"].append(np.full(runs, counts[0]))
        rows["nt"].append(np.full(runs, counts[1]))
        rows["diff"].append(means[1] - means[0])
        rows["var"].append(np.maximum(variances[0], variances[1]) * (1 / counts[0] + 1 / counts[1]))
        arms.append(np.stack([means.T, variances.T], axis=-1))
        rows["own"].append(variances[0] / counts[0] + variances[1] / counts[1])
        rows["ev"].append(events.min(axis=0))
    nc, nt, diff, var, own, ev = (np.column_stack(rows[k]) for k in rows)
    decidable = (np.minimum(nc, nt) >= MIN_UNITS) & (ev >= MIN_EVENTS)
    return Looks(nc, nt, diff, var, own, ev, decidable, np.stack(arms, axis=1))


def sequence_bounds(looks: Looks, planned_n: int) -> tuple[Floats, Floats]:
    width = half_width(looks.var, looks.n_control + looks.n_candidate, ALPHA, 2.0 * planned_n)
    return looks.diff - width, looks.diff + width


def naive_bounds(looks: Looks) -> tuple[Floats, Floats]:
    width = normal_quantile(1 - ALPHA / 2) * np.sqrt(looks.var_own)
    return looks.diff - width, looks.diff + width


def ever(condition: npt.NDArray[np.bool_], looks: Looks) -> float:
    """The share of rollouts where ``condition`` held at some look where deciding is allowed."""
    return float(np.mean(np.any(condition & looks.decidable, axis=1)))


def planned(batches: list[tuple[int, int]]) -> int:
    """Tuned to the rollout's final size: the units per arm if the arms were even."""
    return sum(c + t for c, t in batches) // 2


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
