"""ALS: implicit-feedback matrix factorisation (Hu, Koren, Volinsky 2008) by ``implicit``.

Fit: implicit's CPU ``AlternatingLeastSquares`` on the training matrix, confidence
``1 + alpha * weight``, with a fixed ``random_state`` (so a refit on the same data gives the
same factors), no progress bar, BLAS held to one thread (implicit's own threads do the work;
a BLAS pool on top slows it down and makes implicit warn).

Score: every history row's user vector is recomputed from the item factors (implicit's
``recalculate_user``: the exact least-squares solve for that row), the same way for a user seen
at fit and for one who was not, so new users and interactions since training count at request
time; the solve runs on one thread (see ``_SCORING_THREADS``), and the scoring with BLAS held
to one thread, as at fit. Items are then ranked by inner product: exactly up to ``exact_limit`` items, through a
faiss HNSW index above it (see :mod:`~taxiway.recommend.generators.factors`). A row with no
history gets no item (all -1).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.generators import store
from taxiway.recommend.generators.blas import one_blas_thread
from taxiway.recommend.generators.factors import FactorIndex
from taxiway.recommend.generators.inputs import (
    empty_rows,
    exclusions,
    histories,
    training_matrix,
)
from taxiway.recommend.interactions import Interactions

__all__ = ["Als"]

_SCORING_THREADS = 1
"""implicit's threads for recalculate_user at top(). One: a request solves one row (64 x 64),
which no thread pool speeds up, and an OpenMP pool (implicit's default: every core) waiting
at its barrier beside BLAS's pool and the other requests' cost it 10-25 ms of CPU per request
on this 2-core machine (bench shop, 100k items: 24-29 ms CPU per request with the pool, 7-8 ms
with one thread; the solve itself takes 0.03 ms)."""


class Als:
    """implicit's ALS; user vectors recomputed from each history row at top()."""

    kind: ClassVar[str] = "als"

    def __init__(
        self,
        k: int = 200,
        factors: int = 64,
        iterations: int = 15,
        regularization: float = 0.01,
        alpha: float = 1.0,
        exact_limit: int = 50_000,
        random_state: int = 0,
    ) -> None:
        self.k = k
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.exact_limit = exact_limit
        self.random_state = random_state
        self.index: FactorIndex | None = None
        self._model: AlternatingLeastSquares | None = None

    def fit(self, train: Interactions) -> None:
        matrix = training_matrix(train, self.kind)
        model = self._implicit()
        with one_blas_thread():
            model.fit(matrix, show_progress=False)
        model.num_threads = _SCORING_THREADS
        self._model = model
        self.index = FactorIndex(np.asarray(model.item_factors), self.exact_limit)

    def top(
        self, history: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        index, model = self._fitted()
        rows = histories(history, index.n_items)
        banned = exclusions(exclude, rows.shape)
        with one_blas_thread():  # the solve and the scoring (U @ V.T) alike
            users = np.asarray(
                model.recalculate_user(np.arange(rows.shape[0]), rows), dtype=np.float32
            )
            return index.top(users, k, banned, empty_rows(rows))

    def save(self, folder: Path) -> None:
        index, _ = self._fitted()
        params = {
            "k": self.k,
            "factors": self.factors,
            "iterations": self.iterations,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "exact_limit": self.exact_limit,
            "random_state": self.random_state,
        }
        store.write(folder, self.kind, params, index.arrays())

    @classmethod
    def load(cls, folder: Path) -> Self:
        params, arrays = store.read(folder, cls.kind)
        generator = cls(**params)
        generator.index = FactorIndex.from_arrays(arrays, generator.exact_limit)
        generator._model = generator._implicit()
        generator._model.item_factors = generator.index.item_factors
        generator._model.num_threads = _SCORING_THREADS
        return generator

    def _implicit(self) -> AlternatingLeastSquares:
        with one_blas_thread():  # implicit checks the BLAS pool when constructed
            return AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
            )

    def _fitted(self) -> tuple[FactorIndex, AlternatingLeastSquares]:
        if self.index is None or self._model is None:
            raise ModelError("the als generator is not fitted", fix="call fit(train) first")
        return self.index, self._model
