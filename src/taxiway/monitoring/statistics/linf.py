"""The L-infinity distance between category shares: the largest change of any one share.

``max over categories |r - c|``, with ``r`` and ``c`` each category's share of the reference
and the current sample (0 where a category is absent). In [0, 1], symmetric, and read
directly: 0.1 means some category's share moved by 10 points.

>>> LInfinity().compare(["a", "b"], ["a", "b"])
0.0
>>> LInfinity().compare(["a", "a", "b", "b"], ["a", "b", "b", "b"])
0.25
>>> from taxiway.monitoring.profiles import CategoricalProfile
>>> LInfinity().between(CategoricalProfile.reference(["a", "b"]), CategoricalProfile.reference(["b"]))
0.5
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
    shares_of_cells,
)


class LInfinity:
    """The largest absolute change in any category's share."""

    name: Final = "linf"
    kind: Final[Kind] = "categorical"
    kinds: Final[frozenset[Kind]] = frozenset({"categorical"})

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """``max |r - c|`` over every category seen in either sample."""
        ref, cur = category_counts(reference, current)
        return float(np.max(np.abs(ref / ref.sum() - cur / cur.sum())))

    def between(self, reference: Profile, current: Profile) -> float:
        """The largest share change between two categorical profiles."""
        require_kind(self, reference, current)
        return float(self.of_cells(cells_between(reference, current))[0])

    def of_cells(self, cells: Cells) -> npt.NDArray[np.float64]:
        """L-infinity of every window row of ``cells``."""
        reference, windows = shares_of_cells(cells)
        return np.asarray(np.max(np.abs(windows - reference[None, :]), axis=1), dtype=np.float64)
