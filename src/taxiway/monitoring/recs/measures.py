"""The pure-numpy measures of recommended lists, shared by the offline evaluation
(:mod:`taxiway.recommend.metrics` imports them) and the monitor of the served lists.

- ``coverage`` = distinct items recommended / items on offer (``n_items``);
- ``gini`` = the Gini coefficient of how often each item is recommended, Σ (2i − n − 1) c_(i) /
  (n Σ c) with the counts ``c`` sorted ascending over every item on offer (zeros included):
  0 when every item is shown equally often, near 1 when a few items take every slot;
- ``wilson`` = the Wilson score interval of a binomial share (click-through per impression);
- ``list_recall`` = per list, |list[:k] ∩ relevant| / |relevant| (None when nothing is relevant);
- ``popularity_deciles`` = each item's popularity decile: the items ranked by their interactions
  (most first, ties by id), decile ``1 + rank * 10 // n`` (1: the 10% most popular, 10: the
  least); ``decile_mix`` = the share of list slots and of interactions per decile, and the
  fewest and most interactions of the items in each: what a version stores at training so the
  monitor compares the served mix with the evaluation's lists, labelled the same way.

>>> gini(np.array([5, 5, 5, 5])), gini(np.array([0, 0, 0, 8]))
(0.0, 0.75)
>>> coverage(np.array([3, 0, 1, 0]))
0.5
>>> [round(x, 4) for x in wilson(5, 100)]
[0.0215, 0.1118]
>>> list_recall(["a", "b", "c"], {"c", "d"}, 2), list_recall(["a"], set(), 1)
(0.0, None)
>>> popularity_deciles(np.array([1, 9, 5, 0]), ["a", "b", "c", "d"]).tolist()
[6, 1, 3, 8]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["coverage", "decile_mix", "gini", "list_recall", "popularity_deciles", "wilson"]

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


def popularity_deciles(
    counts: NDArray[np.integer[Any]] | NDArray[np.floating[Any]], ids: Sequence[str]
) -> NDArray[np.int8]:
    """Per item (aligned with ``ids``), its popularity decile by ``counts``: ranked most first,
    ties by id, decile ``1 + rank * 10 // n``."""
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    names = np.array([str(i) for i in ids], dtype=np.str_)
    order = np.lexsort((names, -np.asarray(counts, dtype=np.float64)))
    deciles = np.empty(n, dtype=np.int8)
    deciles[order] = 1 + np.arange(n, dtype=np.int64) * 10 // n
    return deciles


def decile_mix(
    lists: NDArray[np.integer[Any]],
    counts: NDArray[np.integer[Any]] | NDArray[np.floating[Any]],
    ids: Sequence[str],
) -> dict[str, Any]:
    """The popularity deciles of the items in ``lists`` (item codes into ``ids``, -1 padding)
    and of the interactions ``counts`` (per item code), JSON-ready: ``served`` (share of the
    slots per decile), ``interactions`` (share of the interactions per decile), ``edges``
    (per decile, the fewest and most interactions of its items), ``slots`` and ``items``.

    >>> mix = decile_mix(np.array([[1, 2], [1, -1]]), np.array([1, 9, 5, 0]), "abcd")
    >>> mix["served"], mix["interactions"]["1"], mix["edges"]["8"], mix["slots"]
    ({'1': 0.6666666666666666, '3': 0.3333333333333333}, 0.6, [0, 0], 3)
    """
    deciles = popularity_deciles(counts, ids)
    values = np.asarray(counts, dtype=np.float64)
    codes = np.asarray(lists).ravel()
    codes = codes[(codes >= 0) & (codes < len(deciles))]
    slots = np.bincount(deciles[codes], minlength=11)[1:]
    interactions = np.bincount(deciles, weights=values, minlength=11)[1:]
    present = sorted({int(d) for d in deciles})
    total_slots, total = float(slots.sum()), float(interactions.sum())
    return {
        "served": {str(d): float(slots[d - 1] / total_slots) for d in present if slots[d - 1]},
        "interactions": {
            str(d): float(interactions[d - 1] / total) if total else 0.0 for d in present
        },
        "edges": {
            str(d): [_number(values[deciles == d].min()), _number(values[deciles == d].max())]
            for d in present
        },
        "slots": int(total_slots),
        "items": len(deciles),
    }


def _number(value: np.floating[Any]) -> int | float:
    """A count as JSON shows it: an integer when it is one."""
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float
