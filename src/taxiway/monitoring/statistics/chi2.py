"""The chi-square statistic of homogeneity on category counts.

The two samples' counts form a 2 x k table over every category seen in either; the
statistic is ``sum((O - E)^2 / E)`` with ``E = row total * column total / grand total``.
Every expected count is positive (each category was seen at least once), so no epsilon is
needed, and the statistic is symmetric. It grows with the sample sizes for a given shift:
compare it only between windows of the same size (the monitor's calibration does).

>>> ChiSquare().compare(["a", "b"], ["a", "b"])
0.0
>>> ChiSquare().compare(["a", "a"], ["b", "b"])
4.0
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.monitoring.statistics.base import Kind, category_counts


class ChiSquare:
    """Chi-square of homogeneity between two samples of category labels."""

    name: Final = "chi2"
    kind: Final[Kind] = "categorical"

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """The chi-square statistic of the 2 x k table of counts."""
        observed = np.vstack(category_counts(reference, current))
        expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0) / observed.sum()
        return float(np.sum((observed - expected) ** 2 / expected))
