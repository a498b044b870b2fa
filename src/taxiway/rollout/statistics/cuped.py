"""CUPED (Deng et al. 2013): less variance in the difference between arms, from each unit's
own outcome before it was exposed.

Definition. For units with outcome ``y`` and pre-exposure outcome ``x`` (the same outcome
over a period before the rollout began: last month's spend, conversions), over *both* arms
pooled::

    theta = cov(y, x) / var(x)
    adjusted = y - theta * (x - mean(x))

A unit with no pre-period value (new users) gets the pooled mean of ``x``, so its term is 0
and its outcome is kept as is. Assignment is random and ``x`` predates it, so ``x`` has the
same mean in both arms: the difference of the adjusted means estimates the same difference
as the raw one, with variance shrunk by the factor ``1 - corr(y, x)^2`` (pooled ``theta``
and ``mean(x)``, not per arm, so the subtraction does not depend on the arm). The
adjusted values go into :class:`.arms.ArmStats` like raw ones.
:func:`variance_reduction` reports the share of variance removed.

>>> y = [1.0, 2.0, 3.0, 4.0]
>>> x = [1.0, 2.0, 3.0, float("nan")]
>>> adjusted, theta = cuped_adjust(y, x)
>>> adjusted.tolist(), theta
([2.0, 2.0, 2.0, 4.0], 1.0)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def cuped_adjust(y: npt.ArrayLike, x: npt.ArrayLike) -> tuple[Floats, float]:
    """The adjusted outcomes and ``theta`` (NaN in ``x``: no pre-period value). Without any
    pre-period value, or one that never varies, ``theta`` is 0 and ``y`` is returned as is.

    >>> cuped_adjust([1.0, 2.0], [float("nan"), float("nan")])
    (array([1., 2.]), 0.0)
    """
    outcomes = np.asarray(y, dtype=np.float64).ravel()
    covariate = np.asarray(x, dtype=np.float64).ravel()
    if outcomes.shape != covariate.shape:
        raise ValueError(
            f"{outcomes.size} outcomes but {covariate.size} pre-period values: give one per "
            "unit (NaN where a unit has none)"
        )
    known = np.isfinite(covariate)
    if not known.any():
        return outcomes.copy(), 0.0
    filled = np.where(known, covariate, covariate[known].mean())
    centred = filled - filled.mean()
    spread = float(np.dot(centred, centred))
    if spread <= 0.0:
        return outcomes.copy(), 0.0
    theta = float(np.dot(centred, outcomes - outcomes.mean()) / spread)
    return outcomes - theta * centred, theta


def variance_reduction(y: npt.ArrayLike, adjusted: npt.ArrayLike) -> float:
    """The share of the outcomes' variance CUPED removed: ``1 - var(adjusted) / var(y)``
    (0 when ``y`` does not vary).

    >>> variance_reduction([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 4.0])
    0.4
    """
    raw = float(np.var(np.asarray(y, dtype=np.float64)))
    if raw <= 0.0:
        return 0.0
    return 1.0 - float(np.var(np.asarray(adjusted, dtype=np.float64))) / raw
