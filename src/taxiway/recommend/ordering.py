"""Ordering of the final list: at most N items per category, stable, scores kept.

Semantics: walk each row's candidates best first; keep an item while fewer than ``limit``
items of its category were kept before it; an item without a category (code ``-1``) is
never limited. Kept items stay in their order with their scores and stages; the row is then
compacted to the left and padded with ``-1`` (a row may end shorter than ``k``: the limit is
a promise, not a preference).

>>> import numpy as np
>>> items = np.array([[0, 1, 2, 3, -1]], np.int32)
>>> category = np.array([7, 7, 7, -1], np.int32)   # by item code
>>> keep = max_per_category(items, category, 2)
>>> keep.tolist()
[[True, True, False, True, False]]
>>> compact(keep, items, np.array([[.9, .8, .7, .6, 0]]))[0].tolist()
[[0, 1, 3, -1, -1]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["compact", "max_per_category"]


def max_per_category(
    items: NDArray[np.int32], category: NDArray[np.int32], limit: int
) -> NDArray[np.bool_]:
    """Which cells of ``items`` (rows x slots, ``-1`` padding) to keep so that no row holds
    more than ``limit`` items of one category (``category[item]``; ``-1``: none)."""
    n_rows, width = items.shape
    present = items >= 0
    groups = np.where(present, category[np.where(present, items, 0)], -1).astype(np.int64)
    limited = present & (groups >= 0)
    keys = np.arange(n_rows, dtype=np.int64)[:, None] * (int(category.max(initial=0)) + 2) + groups
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_keys = flat[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(flat)), 0))
    rank = np.empty(len(flat), dtype=np.int64)
    rank[order] = np.arange(len(flat)) - group_start
    within = rank.reshape(n_rows, width) < limit
    return present & (~limited | within)


def compact(keep: NDArray[np.bool_], *arrays: NDArray[Any]) -> tuple[NDArray[Any], ...]:
    """Each of ``arrays`` (rows x slots) with the kept cells moved left in order and the rest
    filled with ``-1`` (items, stage codes) or ``0`` (scores: float arrays)."""
    position = np.cumsum(keep, axis=1) - 1
    rows, cols = np.nonzero(keep)
    out = []
    for array in arrays:
        fill = 0 if np.issubdtype(array.dtype, np.floating) else -1
        moved = np.full_like(array, fill)
        moved[rows, position[rows, cols]] = array[rows, cols]
        out.append(moved)
    return tuple(out)
