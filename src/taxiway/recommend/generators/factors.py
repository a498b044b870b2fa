"""Top-k by inner product of user and item factors: exact up to a catalog size, faiss above it.

Up to ``exact_limit`` items every item is scored (``U @ V.T``) and :func:`top_k` selects, so
exclusions are exact (an excluded item's score is -inf). Above it, a faiss HNSW index over the
item factors is searched. A row with no exclusion is searched as is (all such rows in one
call); a row with exclusions is searched for k items through an ``IDSelectorBitmap`` of the
items it allows (``SearchParametersHNSW(sel=..., efSearch=256)``): faiss walks the whole graph
but returns only allowed items, so efSearch stays 256 whatever the row excludes. A row that
allows at most 10% of the catalog, or whose filtered search came back short, is scored exactly
over the items it allows instead. An excluded item never comes back (every answer is checked
against the row once more), and k items come back whenever the row allows k.

Why filter inside the search (measured on bench/recommend_serve.py's shop: 100k x 64 ALS item
factors, 200 users with their histories plus the 3,288 unavailable and denied items excluded,
~3,300 per row, one thread, one row per call as the service asks): fetching k + the excluded
count (efSearch ~3,300) took 6.6 ms median, 8.1 ms p99 (55 ms when the machine was loaded);
the bitmap selector at efSearch 256 takes 0.8 ms median, 1.3 ms p99, recall@10 against exact
0.978 (0.991 at efSearch 512, 1.1 ms). With 20,000 more random exclusions per row: 33 ms
before, 1.0 ms after. ``IDSelectorNot(IDSelectorBatch(banned))`` returns the same items but
hashing the banned ids costs 3-9 ms per row at 30-90% excluded; the bitmap costs ~0.1 ms.
Why exact below 10% allowed: scoring the allowed items costs ~0.1 us per item (1 ms at 10k,
the graph search's cost), and there the graph search's recall starts to drop (0.986 at 10%
allowed, 0.93 at 3%, 0.55 at 0.3% over random exclusions).

Why ``IndexHNSWFlat`` (inner product, M=32, efConstruction=80, efSearch at least 256) rather
than ``IndexFlatIP``: the flat index is exact but reads every item for every query. Measured
over 100k items x 64 random Gaussian factors (a hard case: no low-dimensional structure), one
user's top-10 on this 2-core machine while it was loaded (load average ~10, so absolute times
are high): exact numpy scoring 25 ms median, IndexFlatIP 45 ms, HNSW 0.5 ms at efSearch 128
(recall@10 vs exact 0.885), 0.8 ms at 256 (0.975), 1.4 ms at 512 (0.996); 256 is the default.
The HNSW build took about 60 s there, paid once at fit. Below ``exact_limit`` the exact path
needs no index, so none is built. The index is kept in the npz as faiss's own serialised bytes
(no pickle), so load() does not rebuild it.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.recommend.generators.topk import padded, top_k

__all__ = ["FactorIndex"]

_M = 32
_EF_CONSTRUCTION = 80
_EF_SEARCH = 256
_EXACT_SHARE = 0.1
"""A row allowing at most this share of the catalog is scored exactly over what it allows
(measured, see the module docstring: there exact costs no more than the graph search, and the
graph search's recall starts to drop)."""


class FactorIndex:
    """Item factors and, above ``exact_limit`` items, an approximate inner-product index."""

    def __init__(
        self, item_factors: NDArray[np.float32], exact_limit: int, index: Any = None
    ) -> None:
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.exact_limit = exact_limit
        self.index = index
        if index is None and self.approximate:
            self.index = _hnsw(self.item_factors)

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def approximate(self) -> bool:
        """Whether top() searches the faiss index (the catalog is above ``exact_limit``)."""
        return self.n_items > self.exact_limit

    def top(
        self,
        users: NDArray[np.float32],
        k: int,
        exclude: sp.csr_matrix,
        empty: NDArray[np.bool_],
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """The k best items for each user vector; rows flagged ``empty`` get no item."""
        if not self.approximate:
            scores = np.asarray(users @ self.item_factors.T, dtype=np.float32)
            items, values = top_k(scores, k, exclude)
        else:
            items, values = self._search(users, k, exclude)
        items[empty] = -1
        values[empty] = -np.inf
        return items, values

    def _search(
        self, users: NDArray[np.float32], k: int, exclude: sp.csr_matrix
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        rows = users.shape[0]
        items, values = padded(rows, k)
        if rows == 0 or k <= 0:
            return items, values
        queries = np.ascontiguousarray(users, dtype=np.float32)
        excluded_counts = np.diff(exclude.indptr)
        free = np.flatnonzero(excluded_counts == 0)
        if free.size:  # nothing to filter: one batched search
            found_values, found = self.index.search(
                queries[free], min(k, self.n_items), params=_parameters()
            )
            for at, row in enumerate(free.tolist()):
                _place(items, values, row, found[at], found_values[at], k)
        for row in np.flatnonzero(excluded_counts > 0).tolist():
            allowed = np.ones(self.n_items, dtype=bool)
            allowed[exclude.indices[exclude.indptr[row] : exclude.indptr[row + 1]]] = False
            codes, scores = self._row(queries[row], k, allowed)
            keep = (codes >= 0) & allowed[np.maximum(codes, 0)]  # never an excluded item
            _place(items, values, row, codes[keep], scores[keep], k)
        return items, values

    def _row(
        self, query: NDArray[np.float32], k: int, allowed: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """One row's best items among ``allowed``: the index searched through a bitmap
        selector, or every allowed item scored when few are allowed or the index came back
        short (a heavily filtered graph search can miss them)."""
        count = int(np.count_nonzero(allowed))
        want = min(k, count)
        if want == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if count > _EXACT_SHARE * self.n_items:
            bitmap = np.packbits(allowed, bitorder="little")  # alive until the search ends
            selector = faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap))
            found_values, found = self.index.search(
                query[None, :], want, params=_parameters(selector)
            )
            codes, scores = found[0], found_values[0]
            if int((codes >= 0).sum()) >= want:
                return codes, scores
        codes = np.flatnonzero(allowed)
        scores = self.item_factors[codes] @ query
        if want < codes.size:
            best = np.argpartition(-scores, want - 1)[:want]
            edge = scores[best].min()
            best = np.flatnonzero(scores >= edge)  # ties at the edge too: ordered by code
            codes, scores = codes[best], scores[best]
        return codes, np.asarray(scores, dtype=np.float32)

    def arrays(self) -> dict[str, NDArray[Any]]:
        """What save() keeps: the factors and, when built, the index's serialised bytes."""
        arrays: dict[str, NDArray[Any]] = {"item_factors": self.item_factors}
        if self.index is not None:
            arrays["faiss_index"] = faiss.serialize_index(self.index)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]], exact_limit: int) -> FactorIndex:
        index = None
        if "faiss_index" in arrays:
            index = faiss.deserialize_index(arrays["faiss_index"])
        return cls(arrays["item_factors"], exact_limit, index)


def _parameters(selector: Any = None) -> Any:
    """Search parameters at the fixed efSearch, with ``selector`` (faiss keeps items it
    rejects as stepping stones in the graph, so a filtered search still walks the graph)."""
    parameters = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in the stubs
    parameters.efSearch = _EF_SEARCH
    if selector is not None:
        parameters.sel = selector
    return parameters


def _place(
    items: NDArray[np.int32],
    values: NDArray[np.float32],
    row: int,
    codes: NDArray[np.int64],
    scores: NDArray[np.float32],
    k: int,
) -> None:
    """Row ``row`` of the answer: ``codes`` (``-1`` dropped) best first, ties by code."""
    real = codes >= 0
    codes, scores = codes[real], scores[real]
    order = np.lexsort((codes, -scores))[:k]
    items[row, : order.size] = codes[order]
    values[row, : order.size] = scores[order]


def _hnsw(item_factors: NDArray[np.float32]) -> Any:
    index = faiss.IndexHNSWFlat(item_factors.shape[1], _M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = _EF_CONSTRUCTION
    index.add(item_factors)
    return index
