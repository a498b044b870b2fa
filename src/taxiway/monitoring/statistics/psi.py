"""The population stability index (PSI) on the reference's decile bins.

``PSI = sum((c - r) * ln(c / r))`` over the bins, where ``r`` and ``c`` are the reference's
and the current sample's shares of each bin. An empty bin would make the logarithm infinite,
so every share is floored at ``EPSILON`` (1e-4) first: a bin the current window never reaches
then adds a large but finite term. Common reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25
major shift (the monitor calibrates its own thresholds).

Between profiles (``between``), numbers are compared on the reference's deciles (the fine
bins summed ten by ten, so the bins are the same as ``compare``'s) and categories on their
shares (every label of either profile, a label absent from one side floored at ``EPSILON``):
PSI takes both kinds. Values beyond the reference's range fold into the outer deciles, as in
``compare``: a constant column moving to another constant scores 0 here, while KS (which
reads the reference's min and max) and the monitor's out-of-range share see it.

>>> PopulationStability().compare(np.arange(100.0), np.arange(100.0))
0.0
>>> round(PopulationStability().compare(np.arange(100.0), np.arange(50.0, 150.0)), 3)
4.346
>>> from taxiway.monitoring.profiles import NumericProfile
>>> ref = NumericProfile.reference(np.arange(100.0))
>>> window = ref.empty_like(); window.update(np.arange(50.0, 150.0))
>>> round(PopulationStability().between(ref, window), 3)
4.346
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.monitoring.profiles import Profile
from taxiway.monitoring.statistics.base import (
    Cells,
    Kind,
    bin_shares,
    cells_between,
    reference_edges,
    require_kind,
    shares_of_cells,
)

EPSILON: Final = 1e-4
"""The floor of a bin's share, so an empty bin gives a finite term."""


def psi_of_shares(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]) -> float:
    """PSI between two aligned share vectors, each floored at ``EPSILON``.

    >>> round(psi_of_shares(np.array([0.5, 0.5]), np.array([0.25, 0.75])), 6)
    0.274653
    """
    return float(psi_of_share_rows(reference, current[None, :])[0])


def psi_of_share_rows(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """PSI of each row of ``current`` (R, C) against the ``reference`` shares (C,).

    >>> psi_of_share_rows(np.array([0.5, 0.5]), np.array([[0.5, 0.5], [0.25, 0.75]])).round(6)
    array([0.      , 0.274653])
    """
    ref = np.maximum(reference, EPSILON)[None, :]
    cur = np.maximum(current, EPSILON)
    return np.asarray(
        np.maximum(0.0, np.sum((cur - ref) * np.log(cur / ref), axis=1)), dtype=np.float64
    )


class PopulationStability:
    """PSI of numbers, binned on the reference's deciles."""

    name: Final = "psi"
    kind: Final[Kind] = "numeric"
    kinds: Final[frozenset[Kind]] = frozenset({"numeric", "categorical"})

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """PSI of ``current`` against ``reference`` (0 when their bin shares match)."""
        edges = reference_edges(reference)
        return psi_of_shares(bin_shares(reference, edges), bin_shares(current, edges))

    def between(self, reference: Profile, current: Profile) -> float:
        """PSI of a window's profile against the reference's (deciles, or category shares)."""
        require_kind(self, reference, current)
        return float(self.of_cells(cells_between(reference, current))[0])

    def of_cells(self, cells: Cells) -> npt.NDArray[np.float64]:
        """PSI of every window row of ``cells``."""
        return psi_of_share_rows(*shares_of_cells(cells))
