"""The L-infinity distance between category shares: the largest change of any one share.

``max over categories |r - c|``, with ``r`` and ``c`` each category's share of the reference
and the current sample (0 where a category is absent). In [0, 1], symmetric, and read
directly: 0.1 means some category's share moved by 10 points.

>>> LInfinity().compare(["a", "b"], ["a", "b"])
0.0
>>> LInfinity().compare(["a", "a", "b", "b"], ["a", "b", "b", "b"])
0.25
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from taxiway.monitoring.statistics.base import Kind, category_counts


class LInfinity:
    """The largest absolute change in any category's share."""

    name: Final = "linf"
    kind: Final[Kind] = "categorical"

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """``max |r - c|`` over every category seen in either sample."""
        ref, cur = category_counts(reference, current)
        return float(np.max(np.abs(ref / ref.sum() - cur / cur.sum())))
