"""The population stability index (PSI) on the reference's decile bins.

``PSI = sum((c - r) * ln(c / r))`` over the bins, where ``r`` and ``c`` are the reference's
and the current sample's shares of each bin. An empty bin would make the logarithm infinite,
so every share is floored at ``EPSILON`` (1e-4) first: a bin the current window never reaches
then adds a large but finite term. Common reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25
major shift (the monitor calibrates its own thresholds).

>>> PopulationStability().compare(np.arange(100.0), np.arange(100.0))
0.0
>>> round(PopulationStability().compare(np.arange(100.0), np.arange(50.0, 150.0)), 3)
4.346
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.monitoring.statistics.base import Kind, bin_shares, reference_edges

EPSILON: Final = 1e-4
"""The floor of a bin's share, so an empty bin gives a finite term."""


def psi_of_shares(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]) -> float:
    """PSI between two aligned share vectors, each floored at ``EPSILON``.

    >>> round(psi_of_shares(np.array([0.5, 0.5]), np.array([0.25, 0.75])), 6)
    0.274653
    """
    ref = np.maximum(reference, EPSILON)
    cur = np.maximum(current, EPSILON)
    return float(max(0.0, np.sum((cur - ref) * np.log(cur / ref))))


class PopulationStability:
    """PSI of numbers, binned on the reference's deciles."""

    name: Final = "psi"
    kind: Final[Kind] = "numeric"

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """PSI of ``current`` against ``reference`` (0 when their bin shares match)."""
        edges = reference_edges(reference)
        return psi_of_shares(bin_shares(reference, edges), bin_shares(current, edges))
