"""The k best items per row of a score matrix: the one selection rule every generator uses.

Semantics, for one row of scores over the catalog:

- an item with a non-zero in the row of ``exclude`` is never returned;
- with ``positive_only`` (count-based generators: popularity, itemknn), an item whose score is
  not above 0 is no candidate: nothing in the data points at it, so the row is padded instead
  of filled with arbitrary items (the pipeline's fallback fills it);
- the rest are ordered by score, best first, ties by the smaller item code, so the answer is
  the same on every run and after save/load;
- fewer than k candidates: the tail is padded with item -1 and score -inf.

>>> import numpy as np
>>> import scipy.sparse as sp
>>> scores = np.array([[0.5, 2.0, 2.0, 0.0]], dtype=np.float32)
>>> items, values = top_k(scores, 3, exclude=sp.csr_matrix(np.array([[0, 0, 1, 0]])))
>>> items.tolist(), values.tolist()
([[1, 0, 3]], [[2.0, 0.5, 0.0]])
>>> top_k(scores, 5, positive_only=True)[0].tolist()
[[1, 2, 0, -1, -1]]
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["NO_ITEM", "padded", "top_k"]

NO_ITEM = -1


def padded(rows: int, k: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """An answer of ``rows`` x ``k`` holding no item yet."""
    return (
        np.full((rows, k), NO_ITEM, dtype=np.int32),
        np.full((rows, k), -np.inf, dtype=np.float32),
    )


def top_k(
    scores: NDArray[np.float32],
    k: int,
    exclude: sp.csr_matrix | None = None,
    *,
    positive_only: bool = False,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Per row of ``scores`` (n x n_items), the ``k`` best item codes and their scores."""
    rows, n_items = scores.shape
    items, values = padded(rows, k)
    if k <= 0 or n_items == 0:
        return items, values
    worst = np.float32(-np.inf)
    # into a new array (the caller's scores are never written); NaN and inf are no candidates
    keep = np.isfinite(scores)
    if positive_only:
        keep &= scores > 0
    masked: NDArray[np.float32] = np.where(keep, scores, worst).astype(np.float32, copy=False)
    if exclude is not None:
        banned = sp.csr_matrix(exclude)
        where = banned.data != 0
        lines = np.repeat(np.arange(banned.shape[0]), np.diff(banned.indptr))
        masked[lines[where], banned.indices[where]] = -np.inf
    take = min(k, n_items)
    for row in range(rows):
        line = masked[row]
        if take < n_items:
            # the k-th best value, then every item at least that good (ties at the edge too),
            # ordered by (-score, code): deterministic whatever argpartition picks; when fewer
            # than k items are candidates (edge -inf), just those
            edge = line[np.argpartition(-line, take - 1)[:take]].min()
            chosen = np.flatnonzero(line >= edge if edge > worst else line > worst)
        else:
            chosen = np.flatnonzero(line > worst)
        order = chosen[np.lexsort((chosen, -line[chosen]))][:take]
        items[row, : order.size] = order
        values[row, : order.size] = line[order]
    return items, values
