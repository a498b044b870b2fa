"""Candidate minus control measured within strata, then combined.

Definition. Units are grouped by the step they were first answered in (their *stratum*).
In stratum ``k`` with ``n_c`` control and ``n_t`` candidate units (both at least 2), the
difference of means ``d_k`` and its variance ``v_k`` (the larger arm variance times
``1/n_c + 1/n_t``, :func:`~taxiway.rollout.statistics.difference_variance`) are combined
with weights ``w_k = n_c n_t / (n_c + n_t)`` (the stratum's effective size, which does not
depend on the outcomes)::

    diff = sum(w_k d_k) / sum(w_k)        var = sum(w_k² v_k) / sum(w_k)²

Why: the share grows step by step, so the candidate's units come mostly from the later steps
and have been watched for less time; within a stratum both arms entered over the same period.

A ratio metric (click-through per impression, :mod:`~taxiway.rollout.statistics.ratio`) is
measured the same way once each unit is replaced by its linearised ratio within its cell (its
arm in its stratum, :func:`ratio_values`): a cell's mean is then its ratio and its variance
the delta method's, so ``d_k`` is the difference of the stratum's ratios and ``v_k`` its
variance, combined as above.

>>> values = np.array([0.0, 1.0, 1.0, 2.0, 10.0, 11.0, 11.0, 12.0])
>>> arm = np.array([0, 0, 1, 1, 0, 0, 1, 1])
>>> step = np.array([0, 0, 0, 0, 1, 1, 1, 1])
>>> diff, var, n_c, n_t = strata_difference(values, arm == 0, arm == 1, step)
>>> diff, n_c, n_t
(1.0, 4, 4)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from taxiway.rollout.statistics import (
    ArmStats,
    Comparison,
    confidence_sequence,
    difference_variance,
)
from taxiway.rollout.statistics.ratio import linearise

__all__ = ["compare_strata", "ratio_values", "strata_difference"]

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


def strata_difference(
    values: Floats, control: Mask, candidate: Mask, step: Any
) -> tuple[float, float, int, int]:
    """Candidate minus control combined over strata, its variance, and the units of each arm
    in the strata used (see the module docstring); variance inf when no stratum has 2 units
    in each arm."""
    total_w, diff, var, n_control, n_candidate = 0.0, 0.0, 0.0, 0, 0
    for index in np.unique(step[control | candidate]).tolist():
        c = ArmStats.of("control", values[control & (step == index)])
        t = ArmStats.of("candidate", values[candidate & (step == index)])
        if c.units < 2 or t.units < 2:
            continue
        weight = c.units * t.units / (c.units + t.units)
        total_w += weight
        diff += weight * (t.mean - c.mean)
        var += weight * weight * difference_variance(c, t)
        n_control, n_candidate = n_control + c.units, n_candidate + t.units
    if total_w == 0:
        return 0.0, math.inf, n_control, n_candidate
    return diff / total_w, var / (total_w * total_w), n_control, n_candidate


def ratio_values(
    numerator: Floats, denominator: Floats, control: Mask, candidate: Mask, step: Any
) -> Floats:
    """Each unit of either arm as its linearised ratio within its arm and stratum (others as
    ``numerator`` has them): what :func:`strata_difference` takes for a ratio metric.

    >>> clicks = np.array([1.0, 0.0, 2.0, 2.0])
    >>> shown = np.array([2.0, 2.0, 4.0, 4.0])
    >>> arm = np.array([0, 0, 1, 1])
    >>> ratio_values(clicks, shown, arm == 0, arm == 1, np.zeros(4, int)).tolist()
    [0.5, 0.0, 0.5, 0.5]
    """
    values = numerator.astype(np.float64, copy=True)
    either = control | candidate
    if not either.any():
        return values
    cell = np.asarray(step)[either].astype(np.int64) * 2 + candidate[either]
    values[either] = linearise(numerator[either], denominator[either], cell)
    return values


def compare_strata(
    values: Floats,
    control: Mask,
    candidate: Mask,
    step: Any,
    *,
    alpha: float,
    planned: int,
    increase: bool,
    control_mean: float,
) -> Comparison:
    """Candidate minus control over strata, with its confidence sequence at ``alpha``."""
    diff, var, n_control, n_candidate = strata_difference(values, control, candidate, step)
    low, high = confidence_sequence(diff, var, n_control, n_candidate, alpha, planned)
    better, worse = (low > 0, high < 0) if increase else (high < 0, low > 0)
    relative = diff / abs(control_mean) if control_mean else None
    return Comparison(diff, low, high, relative, better, worse)
