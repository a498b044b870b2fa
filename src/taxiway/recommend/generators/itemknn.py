"""ItemKNN: items like the ones in a user's history, by cosine similarity of who touched them.

Fit: X is the training matrix binarised (who touched what; weights count in popularity and in
the factor models' confidences, not here). The similarity of items i and j is the cosine of
their columns, ``|users of i and j| / sqrt(|users of i| |users of j|)``; each item keeps its
``neighbours`` most similar other items (S is sparse, items x items, S[i, j] = sim(i, j) for
the neighbours j of i; ties by the smaller code). It is computed a block of items at a time, so
memory stays near ``block x n_items`` floats plus S, whatever the catalog size.

Score: ``binarised history @ S``, so an item scores the summed similarity to the history's items
that hold it among their neighbours. An item reached by no history item is no candidate (-1
padding): the row of a user without history is all padding, and the pipeline falls back.
Works for any history, so a user unseen at fit, or a request's recent items, get neighbours.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.generators import store
from taxiway.recommend.generators.inputs import exclusions, histories, training_matrix
from taxiway.recommend.generators.topk import top_k
from taxiway.recommend.interactions import Interactions

__all__ = ["ItemKnn"]

_BLOCK_CELLS = 8_000_000
"""Dense similarities computed at once (32 MB of float32)."""


class ItemKnn:
    """Cosine item-item similarity, the top ``neighbours`` kept per item."""

    kind: ClassVar[str] = "itemknn"

    def __init__(self, k: int = 200, neighbours: int = 100) -> None:
        self.k = k
        self.neighbours = neighbours
        self.similarity: sp.csr_matrix | None = None

    def fit(self, train: Interactions) -> None:
        seen = _binary(training_matrix(train, self.kind))
        n_items = seen.shape[1]
        norms = np.sqrt(np.asarray(seen.sum(axis=0), dtype=np.float64).ravel())
        norms[norms == 0] = 1.0
        normalised = sp.csc_matrix(seen @ sp.diags((1.0 / norms).astype(np.float32)))
        keep = min(self.neighbours, n_items - 1)
        block = max(1, _BLOCK_CELLS // max(n_items, 1))
        rows: list[NDArray[np.int64]] = []
        cols: list[NDArray[np.int64]] = []
        values: list[NDArray[np.float32]] = []
        for start in range(0, n_items if keep > 0 else 0, block):
            stop = min(start + block, n_items)
            sims = (normalised[:, start:stop].T @ normalised).toarray().astype(np.float32)
            sims[np.arange(stop - start), np.arange(start, stop)] = 0.0  # not its own neighbour
            chosen = np.argpartition(-sims, keep - 1, axis=1)[:, :keep]
            chosen_values = np.take_along_axis(sims, chosen, axis=1)
            positive = chosen_values > 0
            rows.append(np.nonzero(positive)[0] + start)
            cols.append(chosen[positive])
            values.append(chosen_values[positive])
        self.similarity = sp.csr_matrix(
            (
                np.concatenate(values) if values else np.zeros(0, np.float32),
                (
                    np.concatenate(rows) if rows else np.zeros(0, np.int64),
                    np.concatenate(cols) if cols else np.zeros(0, np.int64),
                ),
            ),
            shape=(n_items, n_items),
            dtype=np.float32,
        )

    def top(
        self, history: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        similarity = self._fitted()
        rows = histories(history, similarity.shape[0])
        scores = (_binary(rows) @ similarity).toarray().astype(np.float32)
        banned = exclusions(exclude, rows.shape)
        return top_k(scores, k, banned if banned.nnz else None, positive_only=True)

    def save(self, folder: Path) -> None:
        similarity = self._fitted()
        store.write(
            folder,
            self.kind,
            {"k": self.k, "neighbours": self.neighbours, "n_items": similarity.shape[0]},
            {
                "data": similarity.data,
                "indices": similarity.indices,
                "indptr": similarity.indptr,
            },
        )

    @classmethod
    def load(cls, folder: Path) -> Self:
        params, arrays = store.read(folder, cls.kind)
        model = cls(k=int(params["k"]), neighbours=int(params["neighbours"]))
        n_items = int(params["n_items"])
        model.similarity = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n_items, n_items)
        )
        return model

    def _fitted(self) -> sp.csr_matrix:
        if self.similarity is None:
            raise ModelError("the itemknn generator is not fitted", fix="call fit(train) first")
        return self.similarity


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """1 where ``matrix`` holds a positive value."""
    return sp.csr_matrix(matrix > 0, dtype=np.float32)
