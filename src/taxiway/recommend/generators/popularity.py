"""Popularity: the items with the most (weighted) interactions, the same for every user.

An item's score is the sum of the weights of its training interactions in the ``window`` that
ends at the newest training interaction: those with ``at > newest - window`` (all of them when
``window`` is None). History is ignored; only ``exclude`` differs between rows. An item no one
touched in the window is no candidate (the row is padded with -1 rather than filled at random).
This is the baseline every personalised generator must beat and the last fallback of the
service.

>>> import numpy as np, scipy.sparse as sp
>>> from taxiway.recommend.interactions import Interactions
>>> train = Interactions(user=np.array([0, 1, 1], np.int32), item=np.array([2, 2, 0], np.int32),
...     at=np.array([1, 2, 3]), weight=np.ones(3, np.float32), event=np.zeros(3, np.int8),
...     users=np.array(["a", "b"], object), items=np.array(["x", "y", "z"], object), events=("",))
>>> model = Popularity(k=3)
>>> model.fit(train)
>>> model.top(sp.csr_matrix((1, 3)), 3)[0].tolist()
[[2, 0, -1]]
"""

from __future__ import annotations

from datetime import timedelta
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

__all__ = ["Popularity"]


class Popularity:
    """Weighted interaction counts over ``window`` before the newest training interaction."""

    kind: ClassVar[str] = "popularity"

    def __init__(self, k: int = 200, window: timedelta | None = None) -> None:
        self.k = k
        self.window = window
        self.scores: NDArray[np.float32] | None = None

    def fit(self, train: Interactions) -> None:
        training_matrix(train, self.kind)
        keep = np.ones(len(train), dtype=bool)
        if self.window is not None:
            newest = int(train.at.max())
            keep = train.at > newest - self.window // timedelta(microseconds=1)
        self.scores = np.bincount(
            train.item[keep], weights=train.weight[keep], minlength=train.n_items
        ).astype(np.float32)

    def top(
        self, history: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        scores = self._fitted()
        rows = histories(history, scores.shape[0])
        banned = exclusions(exclude, rows.shape)
        return top_k(
            np.broadcast_to(scores, rows.shape),
            k,
            banned if banned.nnz else None,
            positive_only=True,
        )

    def save(self, folder: Path) -> None:
        window = None if self.window is None else self.window // timedelta(microseconds=1)
        store.write(
            folder, self.kind, {"k": self.k, "window_us": window}, {"scores": self._fitted()}
        )

    @classmethod
    def load(cls, folder: Path) -> Self:
        params, arrays = store.read(folder, cls.kind)
        window = params["window_us"]
        model = cls(
            k=int(params["k"]),
            window=None if window is None else timedelta(microseconds=int(window)),
        )
        model.scores = arrays["scores"]
        return model

    def _fitted(self) -> NDArray[np.float32]:
        if self.scores is None:
            raise ModelError("the popularity generator is not fitted", fix="call fit(train) first")
        return self.scores
