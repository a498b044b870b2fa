"""Simulated rollouts for the statistics' tests, vectorised over rollouts: per-arm outcomes
drawn batch by batch (one loop over looks, numpy over rollouts), summed to what the library
reads at each look.

Outcomes: ``conversion`` (10%), ``revenue`` (10% of units spend an exponential amount of
mean 50: skewed, with many zeros), ``score`` (normal, mean 10, sd 3). Allocations: ``equal``
(100 units per arm per look) and ``ramp`` (1,000 units per look, the candidate's share 1, 5,
10, 25 then 50%, four looks each). A look may decide only once each arm has 100 units and
10 events (the issue's floor): ``Looks.decidable``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from taxiway.rollout.statistics import half_width
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
    """The confidence sequence at every look, tuned to ``planned_n`` units per arm."""
    width = half_width(looks.var, looks.n_control + looks.n_candidate, ALPHA, 2.0 * planned_n)
    return looks.diff - width, looks.diff + width


def naive_bounds(looks: Looks) -> tuple[Floats, Floats]:
    """A fixed-horizon 95% interval (each arm's own variance) at every look: the naive test."""
    width = normal_quantile(1 - ALPHA / 2) * np.sqrt(looks.var_own)
    return looks.diff - width, looks.diff + width


def ever(condition: npt.NDArray[np.bool_], looks: Looks) -> float:
    """The share of rollouts where ``condition`` held at some look where deciding is allowed."""
    return float(np.mean(np.any(condition & looks.decidable, axis=1)))


def planned(batches: list[tuple[int, int]]) -> int:
    """Tuned to the rollout's final size: the units per arm if the arms were even."""
    return sum(c + t for c, t in batches) // 2
