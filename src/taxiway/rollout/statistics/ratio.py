"""Ratio metrics over units (click-through per impression) by the delta method.

Definition. An arm's ratio is ``R = sum(y_i) / sum(n_i)`` over its ``N`` units: ``y_i`` a
unit's outcome (its clicks), ``n_i`` its impressions. The units are independent (the rollout
randomises units, not requests), but a unit's impressions are not: a user who likes the
lists clicks on many of them. So the impressions are not the observations; the units are,
and the delta method (Deng, Knoblich and Lu 2018, "Applying the delta method in metric
analytics") linearises the ratio around its estimate, one value per unit::

    z_i = y_i - R n_i          Var(R) ≈ Var(z) / (N mean(n)²)

``Var(z)`` the sample variance (``ddof=1``) over the units: everything a unit did, however
many impressions, is inside its one ``z_i``. A per-impression binomial variance,
``R (1 - R) / sum(n)``, treats every impression as independent and is too small whenever a
unit's clicks are correlated (``tests/rollout/test_ratio.py`` measures its coverage).

:func:`linearise` turns each unit into ``v_i = R_g + z_i / mean(n)_g`` within its group
``g`` (an arm, or an arm within a step's stratum). Within a group, the mean of ``v`` is
exactly ``R_g`` and its sample variance is ``Var(z) / mean(n)²``, so ``var(v) / N`` is the
delta method's variance: any machinery for a mean per unit (:class:`.arms.ArmStats`, the
strata, the confidence sequence, CUPED) takes the values ``v`` as it takes outcomes and
then estimates the ratio and its variance. CUPED on ``v`` (``v - theta (x - mean(x))`` with
the unit's pre-exposure outcome ``x``) is the regression adjustment of the linearised
ratio: ``x`` predates assignment, so it moves no arm's expected ratio.

>>> arm = ratio_arm("control", [1.0, 0.0, 3.0], [2.0, 2.0, 4.0])
>>> arm.units, arm.mean, round(arm.var, 4)
(3, 0.5, 0.1406)
>>> v = linearise([1.0, 0.0, 3.0], [2.0, 2.0, 4.0], [0, 0, 0])
>>> v.tolist(), float(v.mean()), round(float(v.var(ddof=1)), 4)
([0.5, 0.125, 0.875], 0.5, 0.1406)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from taxiway.rollout.statistics.arms import ArmStats

__all__ = ["linearise", "ratio_arm"]

Floats = npt.NDArray[np.float64]


def ratio_arm(
    name: str, numerator: npt.ArrayLike, denominator: npt.ArrayLike, events: int | None = None
) -> ArmStats:
    """An arm whose ``mean`` is the ratio ``sum(numerator) / sum(denominator)`` over its units
    and whose ``var`` is ``Var(z) / mean(n)²`` (so ``variance_of_mean`` is the delta method's
    variance of the ratio). ``events`` defaults to the units with a non-zero numerator. An
    arm without units, or without a single impression, has no ratio: ``var`` is inf.

    >>> ratio_arm("candidate", [0.0, 0.0], [0.0, 0.0]).var
    inf
    """
    y = np.asarray(numerator, dtype=np.float64).ravel()
    n = np.asarray(denominator, dtype=np.float64).ravel()
    if y.shape != n.shape:
        raise ValueError(
            f"{y.size} numerators but {n.size} denominators: give both per unit, in one order"
        )
    counted = int(np.count_nonzero(y)) if events is None else events
    total = float(n.sum())
    if y.size == 0 or total <= 0.0:
        return ArmStats(name, int(y.size), counted, 0.0, math.inf)
    ratio = float(y.sum()) / total
    if y.size == 1:
        return ArmStats(name, 1, counted, ratio, 0.0)
    mean_n = total / y.size
    z = y - ratio * n
    return ArmStats(name, int(y.size), counted, ratio, float(z.var(ddof=1)) / (mean_n * mean_n))


def linearise(
    numerator: npt.ArrayLike, denominator: npt.ArrayLike, groups: npt.ArrayLike
) -> Floats:
    """Each unit's linearised ratio ``v_i = R_g + (y_i - R_g n_i) / mean(n)_g`` within its
    group ``g`` (see the module docstring): a group's mean of ``v`` is its ratio and its
    sample variance the delta method's ``Var(z) / mean(n)²``. A group without impressions
    keeps its numerators as they are (there is no ratio to linearise around).

    >>> linearise([2.0, 0.0, 1.0, 1.0], [4.0, 4.0, 1.0, 3.0], [0, 0, 1, 1]).tolist()
    [0.5, 0.0, 0.75, 0.25]
    """
    y = np.asarray(numerator, dtype=np.float64).ravel()
    n = np.asarray(denominator, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    if not y.shape == n.shape == g.shape:
        raise ValueError(
            f"{y.size} numerators, {n.size} denominators and {g.size} groups: give one per unit"
        )
    values = y.copy()
    if not y.size:
        return values
    if g.dtype.kind in "iu" and int(g.min()) >= 0 and int(g.max()) < 4 * g.size + 64:
        index, size = g.astype(np.intp), int(g.max()) + 1  # small codes: bincount them as they are
    else:
        labels, inverse = np.unique(g, return_inverse=True)
        index, size = inverse.ravel(), len(labels)
    units = np.bincount(index, minlength=size).astype(np.float64)
    y_sum = np.bincount(index, weights=y, minlength=size)
    n_sum = np.bincount(index, weights=n, minlength=size)
    has = n_sum > 0
    ratio = np.divide(y_sum, n_sum, out=np.zeros(size), where=has)
    mean_n = np.divide(n_sum, units, out=np.ones(size), where=has)
    linear = ratio[index] + (y - ratio[index] * n) / mean_n[index]
    out: Floats = np.where(has[index], linear, values)
    return out
