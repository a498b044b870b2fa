"""The two-sample Kolmogorov-Smirnov statistic D = max |F_ref(x) - F_cur(x)|.

D is in [0, 1] and symmetric. :func:`ks_pvalue` gives the asymptotic p-value (Kolmogorov's
distribution with Stephens' small-sample correction) for diagnosis only: on large windows any
shift is "significant", so the monitor alerts on D against calibrated thresholds, never on p.

Between profiles (``between``, numbers only), D is the largest CDF gap at the fine-bin edges
and at the reference's minimum and maximum (where the window's values out of range show):
exact for the data at those points, so it can only be below the raw samples' D, by at most
the mass of one fine bin (about 1%).

>>> KolmogorovSmirnov().compare([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0])
0.5
>>> from taxiway.monitoring.profiles import NumericProfile
>>> ref = NumericProfile.reference(np.arange(100.0))
>>> window = ref.empty_like(); window.update(np.arange(100.0) + 1_000)
>>> KolmogorovSmirnov().between(ref, window)
1.0
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.monitoring.profiles import Profile
from taxiway.monitoring.statistics.base import Cells, Kind, cells_between, numbers, require_kind


def ks_statistic(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]) -> float:
    """D between two samples, the empirical CDFs compared at every pooled point.

    >>> ks_statistic(np.array([0.0]), np.array([1.0]))
    1.0
    """
    ref = np.sort(reference)
    cur = np.sort(current)
    points = np.concatenate([ref, cur])
    f_ref = np.searchsorted(ref, points, side="right") / ref.size
    f_cur = np.searchsorted(cur, points, side="right") / cur.size
    return float(np.max(np.abs(f_ref - f_cur)))


def ks_pvalue(d: float, n_reference: int, n_current: int) -> float:
    """The asymptotic p-value of D for samples of these sizes (diagnosis only).

    >>> ks_pvalue(0.0, 100, 100)
    1.0
    >>> ks_pvalue(0.5, 100, 100) < 1e-9
    True
    """
    n = n_reference * n_current / (n_reference + n_current)
    return kolmogorov_survival(float((np.sqrt(n) + 0.12 + 0.11 / np.sqrt(n)) * d))


def kolmogorov_survival(lam: float) -> float:
    """P(K > lam) for Kolmogorov's distribution, by the series that converges fast there.

    Below 1 the alternating series converges slowly, so Jacobi's form of the CDF is used:
    ``K(lam) = sqrt(2 pi) / lam * sum(exp(-(2k - 1)^2 pi^2 / (8 lam^2)))``.

    >>> round(kolmogorov_survival(1.0), 6)
    0.27
    >>> kolmogorov_survival(0.0)
    1.0
    """
    if lam <= 0.0:
        return 1.0
    k = np.arange(1, 101)
    if lam < 1.0:
        terms = np.exp(-((2 * k - 1) ** 2) * np.pi**2 / (8 * lam**2))
        cdf = float(np.sqrt(2 * np.pi) / lam * np.sum(terms))
        return min(1.0, max(0.0, 1.0 - cdf))
    p = 2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * (k * lam) ** 2))
    return float(min(1.0, max(0.0, p)))


class KolmogorovSmirnov:
    """The KS statistic D between two samples of numbers (symmetric, in [0, 1])."""

    name: Final = "ks"
    kind: Final[Kind] = "numeric"
    kinds: Final[frozenset[Kind]] = frozenset({"numeric"})

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """D between ``reference`` and ``current``."""
        return ks_statistic(numbers(reference, "reference"), numbers(current, "current"))

    def between(self, reference: Profile, current: Profile) -> float:
        """D between two numeric profiles, at the fine-bin edges and the reference's range."""
        require_kind(self, reference, current)
        return float(self.of_cells(cells_between(reference, current))[0])

    def of_cells(self, cells: Cells) -> npt.NDArray[np.float64]:
        """D of every window row of ``cells``: the largest gap of the cumulative shares."""
        f_ref = np.cumsum(cells.reference) / cells.reference.sum()
        totals = cells.windows.sum(axis=1, keepdims=True)
        f_cur = np.cumsum(cells.windows, axis=1) / np.where(totals > 0, totals, 1.0)
        return np.asarray(np.max(np.abs(f_cur - f_ref[None, :]), axis=1), dtype=np.float64)
