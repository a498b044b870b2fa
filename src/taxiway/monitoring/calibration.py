"""Alert thresholds calibrated to the window size: about 1% false alarms per feature-window.

For a window of n rows, the threshold is the 99th percentile of the statistic between the
reference and windows of n rows drawn from "the distribution the reference came from",
computed once per version for a few sizes (:data:`SIZES`) and interpolated in between
(:func:`threshold_for`). Everything works on the reference profile's cells (100 fine bins,
or the labels), so a window of 1M rows costs as much as one of 200: a multinomial draw.

What "drawn from the reference's distribution" means matters at large n, and is the one
modelling choice here. Resampling the reference itself (a window ~ Multinomial(n, the
reference's shares)) ignores that the reference is a *sample* of N rows: fresh data from the
very same distribution differs from it by the reference's own sampling noise, about 1/N,
which no window size removes. Thresholds from plain resampling shrink like 1/n, fall below
that floor once n passes N, and then every healthy 1M-row window alerts. So each simulated
window first draws the true shares from their posterior given the reference (a Bayesian
bootstrap, Rubin 1981): ``p ~ Dirichlet(reference counts)``, then
``window ~ Multinomial(n, p)``, and is compared with the fixed reference profile, just as a
real window is. For continuous data this is the exact law of the mass between the
reference's order statistics (uniform spacings are Dirichlet(1, ..., 1)); the two cells
beyond the reference's minimum and maximum get weight 1 each, the expected mass beyond a
sample's extremes (a simulated window's values there sit at the reference's ends). So
the threshold is the 99th percentile of the statistic between a reference of size N and a
fresh window of size n: ``~ 1/n + 1/N``, flat once n passes N, where real data also is
(tests/monitoring/test_false_alarms.py checks it with fresh draws at n = 200, 10k, 1M).

A floor against permanent false alarms. Part of the statistic is the reference's own error,
the same in every window; at n >> N it is nearly all of it. There a "1% false alarm" is not
1% of windows but 1% of features that alert in every window, for the version's whole life,
and hysteresis cannot help. So the threshold is never below the 99.9th percentile of the
statistic between the reference and windows *without* window noise (``n * p``, p drawn as
above): a healthy feature alerts for good with probability about 0.1%, while below N the
window's own noise dominates and the 99th percentile (1% of windows) sets the threshold.

Not modelled: labels the reference never saw (one in a window is a strong, often right,
signal for chi-square), and the window's extremes beyond the reference's range (Wasserstein
spreads those values from the range's end to the window's min or max; a simulated window has
none, so its tail cells add nothing).

The percentile is read with ``method="weibull"`` (the k-th of R sorted values with
k = q (R + 1)): its expected coverage is exactly q, where numpy's default linear rule reads
too low a value from R = 200 resamples (about 98.5% coverage, 1.5% false alarms). With 200
resamples a feature's own rate still varies around 1% (sd about 0.7 points); hysteresis
(2 of 3 windows) takes alerts to about 0.1%. Measured on twenty features with fresh windows
(1,000 per size): 1.2%, 1.0% and 0.3% of windows over at n = 200, 10k and 1M; alerts 0.07%,
0.07%, 0.03% (at most 0.9% for one feature).

>>> import numpy as np
>>> from taxiway.monitoring.profiles import NumericProfile
>>> from taxiway.monitoring.statistics import STATISTICS
>>> ref = NumericProfile.reference(np.random.default_rng(0).normal(size=20_000))
>>> table = calibrate(ref, STATISTICS["psi"], sizes=(1_000, 100_000))
>>> table[1_000] > threshold_for(table, 10_000) > table[100_000] > 0
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.errors import MonitoringError
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile, Profile
from taxiway.monitoring.statistics.base import (
    Cells,
    Statistic,
    numeric_cells,
    numeric_points,
    profile_scale,
)

__all__ = [
    "FLOOR_QUANTILE",
    "FLOOR_RESAMPLES",
    "QUANTILE",
    "RESAMPLES",
    "SIZES",
    "calibrate",
    "resample_cells",
    "threshold_for",
    "true_shares",
]

Floats = npt.NDArray[np.float64]

SIZES: Final = (200, 1_000, 10_000, 100_000, 1_000_000)
"""The window sizes thresholds are calibrated at (one table per feature and version)."""
RESAMPLES: Final = 200
"""Simulated windows per size."""
QUANTILE: Final = 0.99
"""The share of healthy windows under the threshold: 1% false alarms per feature-window."""
FLOOR_QUANTILE: Final = 0.999
"""The share of healthy features whose reference error alone stays under the threshold."""
FLOOR_RESAMPLES: Final = 1_000
"""Draws of the true shares for the floor (the 0.999 quantile of 1,000 is their maximum)."""


def _reference_cells(reference: Profile) -> tuple[Floats, Floats]:
    """The reference's counts on its cells, and the Dirichlet weights of the true shares."""
    if isinstance(reference, NumericProfile):
        counts = numeric_cells(reference)
        weights = counts.copy()
        weights[0] = weights[-1] = 1.0  # the mass beyond the sample's extremes
        return counts, weights
    counts = np.array([reference.counts[label] for label in sorted(reference.counts)], dtype=float)
    return counts, counts.copy()


def true_shares(reference: Profile, resamples: int, rng: np.random.Generator) -> Floats:
    """``resamples`` draws of the column's true cell shares given the reference (one per row):
    ``Dirichlet(reference counts)``, the extremes' outer cells weighted 1 (module docstring).

    >>> from taxiway.monitoring.profiles import CategoricalProfile
    >>> ref = CategoricalProfile.reference(["a"] * 60 + ["b"] * 40)
    >>> shares = true_shares(ref, 1_000, np.random.default_rng(0))
    >>> shares.shape, bool(abs(shares[:, 0].mean() - 0.6) < 0.01)
    ((1000, 2), True)
    """
    if reference.known == 0:
        raise ValueError("the reference profile is empty (no known value): nothing to calibrate")
    weights = _reference_cells(reference)[1]
    positive = weights > 0
    shares = np.zeros((resamples, weights.size))
    shares[:, positive] = rng.standard_gamma(
        weights[positive], size=(resamples, int(positive.sum()))
    )
    shares /= shares.sum(axis=1, keepdims=True)
    return shares


def resample_cells(
    reference: Profile, n: int, shares: Floats, rng: np.random.Generator | None
) -> Cells:
    """Simulated windows of ``n`` rows, one per row of ``shares``: ``Multinomial(n, shares)``,
    or, without ``rng``, the expected counts ``n * shares`` (the reference's error alone).

    >>> from taxiway.monitoring.profiles import CategoricalProfile
    >>> ref = CategoricalProfile.reference(["a"] * 60 + ["b"] * 40)
    >>> rng = np.random.default_rng(0)
    >>> cells = resample_cells(ref, 1_000, true_shares(ref, 3, rng), rng)
    >>> cells.windows.shape, cells.windows.sum(axis=1).tolist()
    ((3, 2), [1000.0, 1000.0, 1000.0])
    """
    counts = _reference_cells(reference)[0]
    windows = n * shares if rng is None else rng.multinomial(n, shares).astype(np.float64)
    if isinstance(reference, CategoricalProfile):
        return Cells("categorical", counts, windows)
    ends = np.array([reference.low]), np.array([reference.high])
    return Cells(
        "numeric", counts, windows, numeric_points(reference, *ends), profile_scale(reference)
    )


def calibrate(
    reference: Profile,
    statistic: Statistic,
    sizes: Sequence[int] = SIZES,
    resamples: int = RESAMPLES,
    quantile: float = QUANTILE,
    seed: int = 0,
    *,
    floor_quantile: float = FLOOR_QUANTILE,
    floor_resamples: int = FLOOR_RESAMPLES,
) -> dict[int, float]:
    """The threshold per window size: the ``quantile`` of the statistic over simulated windows,
    never below the ``floor_quantile`` of the reference's own error (module docstring).

    >>> from taxiway.monitoring.profiles import CategoricalProfile
    >>> from taxiway.monitoring.statistics import STATISTICS
    >>> ref = CategoricalProfile.reference(["a"] * 600 + ["b"] * 400)
    >>> table = calibrate(ref, STATISTICS["linf"], sizes=(200, 10_000))
    >>> 0.05 < table[200] < 0.15, 0.01 < table[10_000] < 0.06
    (True, True)
    """
    if reference.kind not in statistic.kinds:
        raise MonitoringError(
            f"the {statistic.name} statistic cannot be calibrated on a {reference.kind} profile",
            fix="pick the statistic per column kind (default_statistic(kind, choice))",
        )
    if not 0.0 < quantile < 1.0 or not 0.0 < floor_quantile < 1.0 or resamples < 1:
        raise ValueError("calibrate needs quantiles in (0, 1) and at least one resample")
    rng = np.random.default_rng(seed)
    # one draw of the true shares per resample, shared by the sizes
    shares = true_shares(reference, max(resamples, floor_resamples), rng)
    ordered = sorted(int(size) for size in sizes)

    def floor_at(n: int) -> float:
        expected = statistic.of_cells(resample_cells(reference, n, shares[:floor_resamples], None))
        return float(np.quantile(expected, floor_quantile, method="weibull"))

    floors = dict.fromkeys(ordered, 0.0)
    if floor_resamples and ordered:
        first, last = floor_at(ordered[0]), floor_at(ordered[-1])
        if math.isclose(first, last, rel_tol=1e-9, abs_tol=1e-15):  # shares only: one floor
            floors = dict.fromkeys(ordered, last)
        else:  # the statistic grows with the counts (chi-square): a floor per size
            floors = {n: floor_at(n) for n in ordered}
    table: dict[int, float] = {}
    for n in ordered:
        values = statistic.of_cells(resample_cells(reference, n, shares[:resamples], rng))
        table[n] = max(float(np.quantile(values, quantile, method="weibull")), floors[n])
    return table


def threshold_for(table: dict[int, float], n: int) -> float:
    """The threshold for a window of ``n`` rows: log-log interpolation in the table.

    Above the largest size the largest size's threshold holds (thresholds flatten there: the
    reference's own noise dominates). Below the smallest size the first segment's slope
    carries on when thresholds fall with n (they do for PSI, JS, KS, Wasserstein, L-inf), so a
    tiny window is not judged by a 200-row window's threshold; a flat or rising first segment
    is clamped instead. A threshold of 0 (a constant column) interpolates linearly in log n.

    >>> table = {100: 0.4, 10_000: 0.04}
    >>> round(threshold_for(table, 1_000), 6), threshold_for(table, 10**7)
    (0.126491, 0.04)
    >>> round(threshold_for(table, 25), 6)
    0.8
    >>> threshold_for({200: 5.0, 1_000: 6.0}, 50)
    5.0
    """
    if not table:
        raise MonitoringError(
            "a drift threshold table is empty",
            fix="rebuild the version's reference (build_reference calibrates every column)",
        )
    sizes = sorted(table)
    n = max(int(n), 1)
    if n in table:
        return table[n]
    if n >= sizes[-1]:
        return table[sizes[-1]]
    if len(sizes) == 1:
        return table[sizes[0]]
    if n <= sizes[0]:
        low, high = sizes[0], sizes[1]
        if table[low] <= table[high]:
            return table[low]
    else:
        index = int(np.searchsorted(sizes, n, side="right"))
        low, high = sizes[index - 1], sizes[index]
    t = (math.log(n) - math.log(low)) / (math.log(high) - math.log(low))
    a, b = table[low], table[high]
    if a > 0 and b > 0:
        return math.exp(math.log(a) + t * (math.log(b) - math.log(a)))
    return max(0.0, a + t * (b - a))
