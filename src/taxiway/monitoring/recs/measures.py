"""The pure-numpy measures of recommended lists, shared by the offline evaluation
(:mod:`taxiway.recommend.metrics` imports them) and the monitor of the served lists.

- ``coverage`` = distinct items recommended / items on offer (``n_items``);
- ``gini`` = the Gini coefficient of how often each item is recommended, Σ (2i − n − 1) c_(i) /
  (n Σ c) with the counts ``c`` sorted ascending over every item on offer (zeros included):
  0 when every item is shown equally often, near 1 when a few items take every slot;
- ``wilson`` = the Wilson score interval of a binomial share (click-through per impression);
- ``list_recall`` = per list, |list[:k] ∩ relevant| / |relevant| (None when nothing is relevant).

>>> gini(np.array([5, 5, 5, 5])), gini(np.array([0, 0, 0, 8]))
(0.0, 0.75)
>>> coverage(np.array([3, 0, 1, 0]))
0.5
>>> [round(x, 4) for x in wilson(5, 100)]
[0.0215, 0.1118]
>>> list_recall(["a", "b", "c"], {"c", "d"}, 2), list_recall(["a"], set(), 1)
(0.0, None)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["coverage", "gini", "list_recall", "wilson"]

_Z95 = 1.959963984540054


def gini(counts: NDArray[np.integer[Any]] | NDArray[np.floating[Any]]) -> float:
    """The Gini coefficient of non-negative ``counts``: Σ (2i − n − 1) c_(i) / (n Σ c), with
    ``c_(i)`` sorted ascending; 0 for no counts at all."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(values), values.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * ranks - n - 1) * values).sum() / (n * total))


def coverage(counts: NDArray[np.integer[Any]] | NDArray[np.floating[Any]]) -> float:
    """The share of items (one count per item on offer) recommended at least once; 0 for no
    items."""
    values = np.asarray(counts)
    return float((values > 0).sum() / len(values)) if len(values) else 0.0


def wilson(hits: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of ``hits`` successes in ``n`` trials; (0, 1)
    when ``n`` is 0. It stays inside [0, 1] and is honest near 0, where click-through lives."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if hits <= 0 else max(0.0, min(p, centre - half))  # exact at the ends
    high = 1.0 if hits >= n else min(1.0, max(p, centre + half))
    return low, high


def list_recall(shown: Sequence[str], relevant: Collection[str], k: int) -> float | None:
    """recall@k of one list: the share of ``relevant`` items among ``shown[:k]``; None when
    nothing is relevant (such a list cannot be judged and is left out of any average)."""
    if not relevant:
        return None
    return len(set(shown[:k]) & set(relevant)) / len(set(relevant))
