"""EASE (Steck 2019): a closed-form item-item linear model, strong on small and mid catalogs.

Fit: X is the training matrix binarised; ``G = X'X + l2 I``, ``P = G^-1``,
``B = I - P / diag(P)`` (column j divided by P[j, j]), so B's diagonal is 0: an item does not
explain itself. Score: ``binarised history @ B``; every item gets a score (a negative one
too), so a row is always full unless exclusions leave fewer than k items. A row with no history
gets no item (all -1): there is nothing to go on, and the pipeline falls back.

Memory and time: G, P and B are dense ``n_items x n_items`` float32 (4 bytes x n_items^2 each,
about 3.6 GB per matrix at 30k items) and the inverse is O(n_items^3). Above ``max_items``
(30,000 by default) fit refuses with a ModelError naming the fix: itemknn or als, whose cost
grows with the interactions rather than with the square of the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.generators import store
from taxiway.recommend.generators.inputs import (
    empty_rows,
    exclusions,
    histories,
    training_matrix,
)
from taxiway.recommend.generators.topk import top_k
from taxiway.recommend.interactions import Interactions

__all__ = ["MAX_ITEMS", "Ease"]

MAX_ITEMS = 30_000


class Ease:
    """EASE's item-item weights B, dense, scored as history @ B."""

    kind: ClassVar[str] = "ease"

    def __init__(self, k: int = 200, l2: float = 500.0, max_items: int = MAX_ITEMS) -> None:
        self.k = k
        self.l2 = l2
        self.max_items = max_items
        self.weights: NDArray[np.float32] | None = None

    def fit(self, train: Interactions) -> None:
        if train.n_items > self.max_items:
            gigabytes = 3 * 4 * train.n_items**2 / 1e9
            raise ModelError(
                f"ease over {train.n_items:,} items needs three dense {train.n_items:,} x "
                f"{train.n_items:,} matrices (about {gigabytes:,.0f} GB) and a cubic inverse; "
                f"it is limited to {self.max_items:,} items",
                fix="use kind: itemknn or kind: als for this catalog",
            )
        seen = sp.csr_matrix(training_matrix(train, self.kind) > 0, dtype=np.float32)
        gram = (seen.T @ seen).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += np.float32(self.l2)
        # G is symmetric positive definite (l2 > 0), so the inverse exists; float32 halves memory
        inverse = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False).astype(np.float32)
        weights = inverse / (-np.diag(inverse))
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)

    def top(
        self, history: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        weights = self._fitted()
        rows = histories(history, weights.shape[0])
        seen = sp.csr_matrix(rows > 0, dtype=np.float32)
        scores = np.asarray(seen @ weights, dtype=np.float32)
        banned = exclusions(exclude, rows.shape)
        items, values = top_k(scores, k, banned if banned.nnz else None)
        empty = empty_rows(seen)
        items[empty] = -1
        values[empty] = -np.inf
        return items, values

    def save(self, folder: Path) -> None:
        store.write(
            folder,
            self.kind,
            {"k": self.k, "l2": self.l2, "max_items": self.max_items},
            {"weights": self._fitted()},
        )

    @classmethod
    def load(cls, folder: Path) -> Self:
        params, arrays = store.read(folder, cls.kind)
        model = cls(k=int(params["k"]), l2=float(params["l2"]), max_items=int(params["max_items"]))
        model.weights = arrays["weights"]
        return model

    def _fitted(self) -> NDArray[np.float32]:
        if self.weights is None:
            raise ModelError("the ease generator is not fitted", fix="call fit(train) first")
        return self.weights
