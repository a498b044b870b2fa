"""The 1-D Wasserstein (earth mover's) distance, in units of the reference's IQR.

``W1 = integral |F_ref(x) - F_cur(x)| dx`` between the two empirical distributions: how far,
on average, mass must move. Dividing by the reference's interquartile range makes it unit-free
(a shift of one IQR gives 1). When the IQR is 0 (more than half the reference is one value),
the reference's standard deviation is used instead, and when that is 0 too (a constant
reference) the raw distance is returned. Because the scale comes from the first argument
only, the normalised value is not symmetric: ``compare(a, b) != compare(b, a)`` in general.

>>> Wasserstein().compare([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 4.0])
0.0
>>> Wasserstein().compare([0.0, 1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0, 6.0])
1.0
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.monitoring.statistics.base import Kind, numbers


def wasserstein_distance(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> float:
    """The raw W1 distance between two samples (the area between their CDFs).

    >>> wasserstein_distance(np.array([0.0]), np.array([3.0]))
    3.0
    """
    ref = np.sort(reference)
    cur = np.sort(current)
    points = np.sort(np.concatenate([ref, cur]))
    widths = np.diff(points)
    f_ref = np.searchsorted(ref, points[:-1], side="right") / ref.size
    f_cur = np.searchsorted(cur, points[:-1], side="right") / cur.size
    return float(np.sum(np.abs(f_ref - f_cur) * widths))


def reference_scale(reference: npt.NDArray[np.float64]) -> float:
    """The reference's IQR; its standard deviation if the IQR is 0; else 1.

    >>> reference_scale(np.array([5.0, 5.0, 5.0]))
    1.0
    """
    q1, q3 = np.quantile(reference, [0.25, 0.75])
    for scale in (float(q3 - q1), float(np.std(reference))):
        if scale > 0:
            return scale
    return 1.0


class Wasserstein:
    """W1 between numbers, normalised by the reference's IQR (not symmetric)."""

    name: Final = "wasserstein"
    kind: Final[Kind] = "numeric"

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """W1 of ``current`` from ``reference`` in reference-IQR units."""
        ref = numbers(reference, "reference")
        cur = numbers(current, "current")
        return wasserstein_distance(ref, cur) / reference_scale(ref)
