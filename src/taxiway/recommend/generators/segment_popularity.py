"""Popularity in the user's segment: what is popular in the categories the user turns to.

A user's segment is the share of their history (weights summed) in each catalog category; an
item's score is that share for the item's category times the item's popularity within its
category over ``window``:

    score(u, i) = share(u, category(i)) * count(i) / count(category(i))

that is the chance of ``i`` when the user picks a category as their history does, then an item
as everyone picked within it. Counts are weighted interactions over ``window`` before the newest
training interaction (all of them when ``window`` is None), as for
:class:`~taxiway.recommend.generators.popularity.Popularity`.

It is the fallback chain's third link (model → item-to-item → segment → global popularity):
cheap, fitted on counts, and personal enough to beat global popularity where categories carry
taste. A row whose history touches no categorised item gives no item (all -1), so the chain
falls to global popularity; items without a category, or untouched in the window, are never
candidates. The item → category map (codes, -1 for none; the catalog as of the split) is given
at construction, since the training interactions do not carry it.

>>> import numpy as np, scipy.sparse as sp
>>> from taxiway.recommend.interactions import Interactions
>>> train = Interactions(user=np.array([0, 0, 1, 1], np.int32),
...     item=np.array([0, 1, 1, 2], np.int32), at=np.array([1, 2, 3, 4]),
...     weight=np.ones(4, np.float32), event=np.zeros(4, np.int8),
...     users=np.array(["a", "b"], object), items=np.array(["x", "y", "z"], object), events=("",))
>>> model = SegmentPopularity(k=3, categories=np.array([0, 0, 1], np.int32))
>>> model.fit(train)
>>> likes_z = sp.csr_matrix(np.array([[0, 0, 1.0]], np.float32))
>>> model.top(likes_z, 3)[0].tolist()
[[2, -1, -1]]
>>> model.top(sp.csr_matrix((1, 3), dtype=np.float32), 3)[0].tolist()
[[-1, -1, -1]]
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

__all__ = ["SegmentPopularity"]


class SegmentPopularity:
    """Per user, the categories' shares of their history times items' popularity within them."""

    kind: ClassVar[str] = "segment_popularity"

    def __init__(
        self,
        k: int = 200,
        window: timedelta | None = None,
        *,
        categories: NDArray[np.int32] | None = None,
    ) -> None:
        self.k = k
        self.window = window
        self.categories = None if categories is None else np.asarray(categories, dtype=np.int32)
        """The category code of each item code (-1: none), from the catalog."""
        self.within: NDArray[np.float32] | None = None
        """Each item's share of its category's weighted interactions in the window."""

    def fit(self, train: Interactions) -> None:
        training_matrix(train, self.kind)
        categories = self._categories(train.n_items)
        keep = np.ones(len(train), dtype=bool)
        if self.window is not None:
            newest = int(train.at.max())
            keep = train.at > newest - self.window // timedelta(microseconds=1)
        counts = np.bincount(train.item[keep], weights=train.weight[keep], minlength=train.n_items)
        counts[categories < 0] = 0.0
        n_categories = int(categories.max()) + 1
        totals = np.bincount(
            categories[categories >= 0], weights=counts[categories >= 0], minlength=n_categories
        )
        of_item = totals[np.maximum(categories, 0)]
        within = np.divide(counts, of_item, out=np.zeros_like(counts), where=of_item > 0)
        self.within = within.astype(np.float32)

    def top(
        self, history: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        within, categories = self._fitted()
        rows = histories(history, within.shape[0])
        banned = exclusions(exclude, rows.shape)
        shares = _shares(rows, categories)
        scores = shares[:, np.maximum(categories, 0)] * within  # within is 0 without a category
        return top_k(scores, k, banned if banned.nnz else None, positive_only=True)

    def save(self, folder: Path) -> None:
        within, categories = self._fitted()
        window = None if self.window is None else self.window // timedelta(microseconds=1)
        store.write(
            folder,
            self.kind,
            {"k": self.k, "window_us": window},
            {"within": within, "categories": categories},
        )

    @classmethod
    def load(cls, folder: Path) -> Self:
        params, arrays = store.read(folder, cls.kind)
        window = params["window_us"]
        model = cls(
            k=int(params["k"]),
            window=None if window is None else timedelta(microseconds=int(window)),
            categories=arrays["categories"],
        )
        model.within = arrays["within"]
        return model

    def _categories(self, n_items: int) -> NDArray[np.int32]:
        categories = self.categories
        if categories is None or categories.shape != (n_items,):
            given = "none" if categories is None else f"{categories.shape[0]} items"
            raise ModelError(
                f"cannot fit {self.kind}: it needs the category of each of the {n_items} items "
                f"(given: {given})",
                fix="declare `category:` in recommend.catalog; in Python pass "
                "categories=catalog.as_of(cutoff).category",
            )
        if not (categories >= 0).any():
            raise ModelError(
                f"cannot fit {self.kind}: no item has a category",
                fix="check the catalog's category column (every value is null), or drop "
                "the segment_popularity generator",
            )
        return categories

    def _fitted(self) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        if self.within is None or self.categories is None:
            raise ModelError(
                f"the {self.kind} generator is not fitted", fix="call fit(train) first"
            )
        return self.within, self.categories


def _shares(rows: sp.csr_matrix, categories: NDArray[np.int32]) -> NDArray[np.float32]:
    """Rows x categories: each row's weights per category over its categorised items, summing
    to 1 (0 everywhere for a row with none). Linear in the rows' interactions, not the catalog."""
    n_rows = rows.shape[0]
    n_categories = max(int(categories.max(initial=-1)) + 1, 1)
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(rows.indptr))
    category = categories[rows.indices]
    has = category >= 0
    mass = np.bincount(
        row_of[has] * n_categories + category[has],
        weights=rows.data[has],
        minlength=n_rows * n_categories,
    ).reshape(n_rows, n_categories)
    mass = mass.astype(np.float64)  # bincount of nothing is int64
    total = mass.sum(axis=1, keepdims=True)
    shares: NDArray[np.float32] = np.divide(
        mass, total, out=np.zeros_like(mass), where=total > 0
    ).astype(np.float32)
    return shares
