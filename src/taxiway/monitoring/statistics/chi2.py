"""The chi-square statistic of homogeneity on category counts.

The two samples' counts form a 2 x k table over every category seen in either; the
statistic is ``sum((O - E)^2 / E)`` with ``E = row total * column total / grand total``.
Every expected count is positive (each category was seen at least once), so no epsilon is
needed, and the statistic is symmetric. It grows with the sample sizes for a given shift:
compare it only between windows of the same size (the monitor's calibration does).
``between`` takes categorical profiles: the table is their exact label counts.

>>> ChiSquare().compare(["a", "b"], ["a", "b"])
0.0
>>> ChiSquare().compare(["a", "a"], ["b", "b"])
4.0
>>> from taxiway.monitoring.profiles import CategoricalProfile
>>> ChiSquare().between(CategoricalProfile.reference(["a", "a"]), CategoricalProfile.reference(["b", "b"]))
4.0
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.monitoring.profiles import Profile
from taxiway.monitoring.statistics.base import (
    Cells,
    Kind,
    category_counts,
    cells_between,
    require_kind,
)


def chi2_of_count_rows(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Chi-square of the 2 x C table (reference counts, one row of ``current``) per row.

    A label neither side counts adds nothing (its column is dropped).

    >>> same_shares = np.array([[2.0, 0.0, 5.0], [4.0, 0.0, 10.0]])
    >>> chi2_of_count_rows(np.array([2.0, 0.0, 5.0]), same_shares).tolist()
    [0.0, 0.0]
    >>> chi2_of_count_rows(np.array([2.0, 0.0]), np.array([[0.0, 2.0]])).tolist()
    [4.0]
    """
    ref = np.broadcast_to(reference[None, :], current.shape)
    columns = ref + current
    n_ref = ref.sum(axis=1, keepdims=True)
    n_cur = current.sum(axis=1, keepdims=True)
    total = n_ref + n_cur
    with np.errstate(divide="ignore", invalid="ignore"):
        e_ref = n_ref * columns / total
        e_cur = n_cur * columns / total
        terms = np.where(
            columns > 0,
            (ref - e_ref) ** 2 / np.where(e_ref > 0, e_ref, 1.0)
            + (current - e_cur) ** 2 / np.where(e_cur > 0, e_cur, 1.0),
            0.0,
        )
    return np.asarray(np.sum(terms, axis=1), dtype=np.float64)


class ChiSquare:
    """Chi-square of homogeneity between two samples of category labels."""

    name: Final = "chi2"
    kind: Final[Kind] = "categorical"
    kinds: Final[frozenset[Kind]] = frozenset({"categorical"})

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """The chi-square statistic of the 2 x k table of counts."""
        observed = np.vstack(category_counts(reference, current))
        expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0) / observed.sum()
        return float(np.sum((observed - expected) ** 2 / expected))

    def between(self, reference: Profile, current: Profile) -> float:
        """Chi-square of two categorical profiles' label counts."""
        require_kind(self, reference, current)
        return float(self.of_cells(cells_between(reference, current))[0])

    def of_cells(self, cells: Cells) -> npt.NDArray[np.float64]:
        """Chi-square of every window row of ``cells`` against the reference counts."""
        return chi2_of_count_rows(cells.reference, cells.windows)
