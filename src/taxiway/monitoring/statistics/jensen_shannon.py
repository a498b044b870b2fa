"""The Jensen-Shannon distance on the reference's decile bins (base 2, so in [0, 1]).

``JS = sqrt(KL(r || m) / 2 + KL(c || m) / 2)`` with ``m = (r + c) / 2`` and logarithms in
base 2; ``r`` and ``c`` are the bin shares. Empty bins need no epsilon: ``0 * log 0`` counts
as 0 and ``m`` is positive wherever either share is. 0 for identical shares, 1 for disjoint
ones; symmetric in its two arguments given the bins. Between profiles (``between``), numbers
are compared on the reference's deciles and categories on their shares: JS takes both kinds.

>>> JensenShannon().compare([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0])
0.0
>>> round(js_of_shares(np.array([1.0, 0.0]), np.array([0.0, 1.0])), 6)
1.0
>>> from taxiway.monitoring.profiles import CategoricalProfile
>>> JensenShannon().between(CategoricalProfile.reference(["a"]), CategoricalProfile.reference(["b"]))
1.0
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


def _kl2(p: npt.NDArray[np.float64], m: npt.NDArray[np.float64]) -> float:
    """KL(p || m) in bits, with 0 * log 0 = 0."""
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log2(p[nonzero] / m[nonzero])))


def js_of_shares(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]) -> float:
    """The Jensen-Shannon distance between two aligned share vectors.

    >>> round(js_of_shares(np.array([0.5, 0.5]), np.array([1.0, 0.0])), 6)
    0.557923
    """
    m = (reference + current) / 2
    divergence = (_kl2(reference, m) + _kl2(current, m)) / 2
    return float(np.sqrt(min(1.0, max(0.0, divergence))))


def _kl2_rows(p: npt.NDArray[np.float64], m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """KL(p || m) in bits per row, with 0 * log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0) / np.where(p > 0, m, 1.0)), 0.0)
    return np.asarray(np.sum(terms, axis=1), dtype=np.float64)


def js_of_share_rows(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The JS distance of each row of ``current`` (R, C) from the ``reference`` shares (C,).

    >>> js_of_share_rows(np.array([0.5, 0.5]), np.array([[0.5, 0.5], [1.0, 0.0]])).round(6)
    array([0.      , 0.557923])
    """
    ref = np.broadcast_to(reference[None, :], current.shape)
    m = (ref + current) / 2
    divergence = (_kl2_rows(ref, m) + _kl2_rows(current, m)) / 2
    return np.sqrt(np.clip(divergence, 0.0, 1.0))


class JensenShannon:
    """Jensen-Shannon distance of numbers, binned on the reference's deciles."""

    name: Final = "jensen_shannon"
    kind: Final[Kind] = "numeric"
    kinds: Final[frozenset[Kind]] = frozenset({"numeric", "categorical"})

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """The distance of ``current`` from ``reference``, in [0, 1]."""
        edges = reference_edges(reference)
        return js_of_shares(bin_shares(reference, edges), bin_shares(current, edges))

    def between(self, reference: Profile, current: Profile) -> float:
        """JS of a window's profile from the reference's (deciles, or category shares)."""
        require_kind(self, reference, current)
        return float(self.of_cells(cells_between(reference, current))[0])

    def of_cells(self, cells: Cells) -> npt.NDArray[np.float64]:
        """JS of every window row of ``cells``."""
        return js_of_share_rows(*shares_of_cells(cells))
