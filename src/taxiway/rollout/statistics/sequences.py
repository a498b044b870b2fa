"""The anytime-valid confidence sequence for the difference of two means (candidate minus
control): an interval that may be looked at after every unit and still covers the true
difference at *every* look with probability at least ``1 - alpha``.

Definition. With ``N`` units in all, the estimate ``diff`` (candidate mean minus control
mean) and its variance ``var = max(var_candidate, var_control) * (1 / n_candidate + 1 / n_control)``
(:func:`difference_variance` says why the larger of the two), write
``s2 = var * N`` (the variance of one unit's contribution). The interval is
``diff ± half_width`` with the two-sided normal-mixture boundary (Robbins' normal mixture,
Howard et al. 2021, in the asymptotic form of Waudby-Smith et al. 2023 that GrowthBook
documents for its sequential testing)::

    half_width = sqrt(s2) * sqrt( 2 (N r² + 1) / (N² r²) * ln( sqrt(N r² + 1) / alpha ) )

Its mixing parameter ``r`` is tuned so that the boundary is tightest at the planned sample
``N* = 2 * planned_n`` (``planned_n`` units per arm: the fixed-horizon sample for the spec's
``min_effect``, :func:`taxiway.rollout.statistics.power.planned_units`)::

    r² = ( -2 ln(alpha) + ln(-2 ln(alpha) + 1) ) / N*

Any ``r`` keeps the guarantee; tuning only moves where the interval is narrowest. At the
planned sample the interval is about 1.55 times as wide as a fixed-horizon 95% interval
(and at most 1.6 times from half to twice that sample): the price of looking every minute.

A one-sided bound at level ``alpha`` (the guardrails, :mod:`.guardrails`) uses the one-sided
normal-mixture boundary of Howard et al. (2021), in closed form::

    half_width = sqrt(s2) * sqrt( 2 (N r² + 1) / (N² r²) * ln( sqrt(N r² + 1) / (2 alpha) + 1 ) )

The guarantee is asymptotic (a central-limit approximation per look, uniform in time): it
holds for a few hundred units per arm and more, which is why the rollout decides nothing
before 100 units and 10 events per arm. ``tests/rollout/test_aa.py`` measures it.

>>> low, high = confidence_sequence(0.01, 1e-5, 5_000, 5_000, alpha=0.05, planned_n=5_000)
>>> round(low, 4), round(high, 4)
(0.0004, 0.0196)
"""

from __future__ import annotations

import math
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from taxiway.errors import RolloutError
from taxiway.rollout.statistics.arms import ArmStats, Comparison, Direction
from taxiway.rollout.statistics.power import DEFAULT_PLANNED_UNITS

Floats = npt.NDArray[np.float64]
Sides = Literal[1, 2]


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise RolloutError(f"alpha must be in (0, 1), not {alpha}", fix="use e.g. alpha: 0.05")


def mixture_r2(alpha: float, planned_total: float) -> float:
    """The squared mixing parameter that makes the boundary tightest at ``planned_total``
    units in all.

    >>> round(mixture_r2(0.05, 10_000), 8)
    0.00079362
    """
    _check_alpha(alpha)
    if planned_total <= 0:
        raise RolloutError(
            f"the planned sample must be positive, not {planned_total}",
            fix="give the planned units per arm (power.planned_units)",
        )
    log_alpha = -2.0 * math.log(alpha)
    return (log_alpha + math.log(log_alpha + 1.0)) / planned_total


@overload
def half_width(
    var: float, n: float, alpha: float, planned_total: float, sides: Sides = 2
) -> float: ...
@overload
def half_width(
    var: Floats, n: Floats | float, alpha: float, planned_total: float, sides: Sides = 2
) -> Floats: ...
def half_width(
    var: float | Floats,
    n: float | Floats,
    alpha: float,
    planned_total: float,
    sides: Sides = 2,
) -> float | Floats:
    """The boundary's half-width for an estimate of variance ``var`` from ``n`` units in all
    (numpy arrays broadcast: the simulations evaluate thousands of looks at once).

    >>> round(half_width(1e-5, 10_000, 0.05, 10_000), 5)
    0.0096
    >>> bool(half_width(1e-5, 10_000, 0.05, 10_000, sides=1) < 0.0096)
    True
    """
    r2 = mixture_r2(alpha, planned_total)
    n_arr = np.asarray(n, dtype=np.float64)
    s2 = np.asarray(var, dtype=np.float64) * n_arr
    grown = n_arr * r2 + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if sides == 2:
            log_term = np.log(np.sqrt(grown) / alpha)
        else:
            log_term = np.log(np.sqrt(grown) / (2.0 * alpha) + 1.0)
        width = np.sqrt(s2 * 2.0 * grown / (n_arr * n_arr * r2) * log_term)
    width = np.where(n_arr > 0, width, np.inf)
    if width.ndim == 0:
        return float(width)
    return np.asarray(width, dtype=np.float64)


def confidence_sequence(
    diff: float,
    var: float,
    n_control: int,
    n_candidate: int,
    alpha: float = 0.05,
    planned_n: int = DEFAULT_PLANNED_UNITS,
) -> tuple[float, float]:
    """The two-sided anytime-valid interval ``(low, high)`` around ``diff`` (candidate minus
    control), ``var`` being the variance of ``diff`` and ``planned_n`` the units per arm the
    boundary is tuned to. Infinite while either arm has fewer than 2 units.

    >>> confidence_sequence(0.0, 0.0, 1, 5)
    (-inf, inf)
    """
    if n_control < 2 or n_candidate < 2 or not math.isfinite(var):
        return -math.inf, math.inf
    width = half_width(var, n_control + n_candidate, alpha, 2.0 * planned_n)
    return diff - width, diff + width


def difference_variance(control: ArmStats, candidate: ArmStats) -> float:
    """The variance used for candidate minus control: the larger of the two arms' unit
    variances, times ``1 / n_control + 1 / n_candidate``.

    Not each arm's own variance over its own units: early in a rollout the candidate arm is
    small (1% of traffic), and for a skewed outcome (revenue: few spenders, large amounts) its
    variance estimate is noisy and moves *with* its mean (few spenders: a low mean and a low
    variance together), so the interval was narrowest exactly when the candidate looked worse.
    In simulation (``tests/rollout/test_aa.py``, revenue at a 1-5-10-25-50% ramp) 7.4% of A/A
    rollouts then declared harm at some look, where 5% is the promise; with the larger
    variance, 0.3%. The larger variance is never below either arm's own, so the interval is
    conservative (it only widens), and for a mean with equal variances it changes nothing.

    >>> control = ArmStats("control", 900, 90, 0.1, 0.09)
    >>> candidate = ArmStats("candidate", 100, 2, 0.02, 0.0198)
    >>> round(difference_variance(control, candidate), 6)
    0.001
    """
    if control.units < 1 or candidate.units < 1:
        return math.inf
    return max(control.var, candidate.var) * (1.0 / control.units + 1.0 / candidate.units)


def compare(
    control: ArmStats,
    candidate: ArmStats,
    *,
    alpha: float = 0.05,
    planned_n: int = DEFAULT_PLANNED_UNITS,
    direction: Direction = "increase",
) -> Comparison:
    """Candidate minus control with its confidence sequence, and which side of 0 it is on.

    >>> control = ArmStats("control", 20_000, 2_000, 0.10, 0.09)
    >>> candidate = ArmStats("candidate", 20_000, 2_300, 0.115, 0.1018)
    >>> result = compare(control, candidate, planned_n=20_000)
    >>> round(result.diff, 3), round(result.relative, 2), result.significant_better
    (0.015, 0.15, True)
    >>> compare(control, candidate, planned_n=20_000, direction="decrease").significant_worse
    True
    """
    diff = candidate.mean - control.mean
    var = difference_variance(control, candidate)
    low, high = confidence_sequence(diff, var, control.units, candidate.units, alpha, planned_n)
    relative = diff / abs(control.mean) if control.mean != 0.0 else None
    above, below = low > 0.0, high < 0.0
    better, worse = (above, below) if direction == "increase" else (below, above)
    return Comparison(diff, low, high, relative, better, worse)
