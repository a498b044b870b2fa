"""Top-k metrics of recommended lists against what each user did next.

Definitions, for one user with recommended list ``R`` (best first, cut at ``k``; padding
``-1`` is no item) and relevant set ``T`` (the items the user interacted with after the
cutoff, never empty for an evaluated user):

- ``recall@k``   = |R ∩ T| / |T|
- ``hit_rate@k`` = 1 if |R ∩ T| > 0 else 0
- ``ndcg@k``     = Σ_{i ≤ k, R_i ∈ T} 1 / log2(i + 1)  /  Σ_{i ≤ min(k, |T|)} 1 / log2(i + 1)
- ``map@k``      = Σ_{i ≤ k, R_i ∈ T} precision@i  /  min(k, |T|), precision@i = |R_{≤i} ∩ T| / i

Each is averaged over users (every user weighs the same). Over everything recommended:

- ``coverage``       = distinct items recommended / items in the catalog
- ``avg_popularity`` = mean over recommended slots of the item's popularity (the share of
  training users who interacted with it, 0..1)
- ``gini``           = Gini coefficient of how often each catalog item is recommended
  (0: every item equally often; near 1: a few items take every slot)

``coverage`` and ``gini`` are defined once, in :mod:`taxiway.monitoring.recs.measures`, so the
monitor of the served lists measures them exactly as the evaluation does.

>>> import numpy as np, scipy.sparse as sp
>>> recommended = np.array([[2, 0, -1], [1, 3, 0]], dtype=np.int32)
>>> relevant = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 1]], dtype=np.float32))
>>> m = ranking_metrics(recommended, relevant, 3)
>>> m["recall@3"], m["hit_rate@3"], round(m["ndcg@3"], 4), round(m["map@3"], 4)
(0.75, 1.0, 0.5089, 0.375)
>>> gini(np.array([5, 5, 5, 5])), gini(np.array([0, 0, 0, 8]))
(0.0, 0.75)
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import SpecError
from taxiway.monitoring.recs.measures import coverage, gini

__all__ = [
    "RANKING_METRICS",
    "catalog_metrics",
    "gini",
    "hits",
    "parse_metric",
    "ranking_metrics",
]

RANKING_METRICS = ("recall", "ndcg", "map", "hit_rate")
"""Per-user metrics, each written ``<name>@<k>``; every one is better higher."""

_METRIC = re.compile(r"(recall|ndcg|map|hit_rate)@([1-9][0-9]*)")


def parse_metric(metric: str) -> tuple[str, int]:
    """``"recall@10"`` → ``("recall", 10)``; SpecError for anything else.

    >>> parse_metric("ndcg@20")
    ('ndcg', 20)
    """
    found = _METRIC.fullmatch(metric.strip())
    if found is None:
        raise SpecError(
            f"{metric!r} is not a recommendation metric",
            fix="write <name>@<k> with name one of recall, ndcg, map, hit_rate (e.g. recall@10)",
        )
    return found.group(1), int(found.group(2))


def hits(recommended: NDArray[np.int32], relevant: sp.csr_matrix) -> NDArray[np.bool_]:
    """``hits[u, i]``: whether ``recommended[u, i]`` is a relevant item of row ``u``."""
    n_rows, n_items = relevant.shape
    if recommended.shape[0] != n_rows:
        raise ValueError(f"{recommended.shape[0]} recommended rows for {n_rows} relevant rows")
    coo = relevant.tocoo()
    keep = coo.data != 0
    keys = coo.row[keep].astype(np.int64) * n_items + coo.col[keep].astype(np.int64)
    rows = np.arange(n_rows, dtype=np.int64)[:, None]
    asked = rows * n_items + recommended.astype(np.int64)
    return (recommended >= 0) & np.isin(asked, keys)


def ranking_metrics(
    recommended: NDArray[np.int32], relevant: sp.csr_matrix, k: int
) -> dict[str, float]:
    """recall, ndcg, map and hit rate at ``k``, averaged over the rows (users).

    Rows of ``relevant`` with no relevant item are left out of every average (they cannot be
    judged); ``users`` says how many rows were averaged.
    """
    top = np.full((recommended.shape[0], k), -1, dtype=np.int32)
    width = min(k, recommended.shape[1])
    top[:, :width] = recommended[:, :width]
    relevant = sp.csr_matrix(relevant)
    relevant.eliminate_zeros()
    sizes = np.diff(relevant.indptr).astype(np.float64)
    judged = sizes > 0
    found = hits(top, relevant)[judged]
    sizes = sizes[judged]
    names = [f"{name}@{k}" for name in RANKING_METRICS]
    if not len(sizes):
        return {**dict.fromkeys(names, 0.0), "users": 0}
    discount = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    ideal = np.cumsum(discount)[np.minimum(sizes, k).astype(np.int64) - 1]
    cumulative = np.cumsum(found, axis=1)
    precision = cumulative / np.arange(1, k + 1, dtype=np.float64)
    per_user = {
        f"recall@{k}": found.sum(axis=1) / sizes,
        f"ndcg@{k}": (found * discount).sum(axis=1) / ideal,
        f"map@{k}": (found * precision).sum(axis=1) / np.minimum(sizes, k),
        f"hit_rate@{k}": found.any(axis=1).astype(np.float64),
    }
    out: dict[str, float] = {name: float(values.mean()) for name, values in per_user.items()}
    return {**out, "users": len(sizes)}


def catalog_metrics(
    recommended: NDArray[np.int32], popularity: NDArray[np.floating[Any]], n_items: int
) -> dict[str, float]:
    """Coverage, average popularity and Gini of ``recommended`` (padding ``-1`` ignored).

    ``popularity[item]`` is the item's popularity (see the module's definitions).
    """
    shown = recommended[recommended >= 0].astype(np.int64)
    counts = np.bincount(shown, minlength=n_items)[:n_items]
    return {
        "coverage": coverage(counts),
        "avg_popularity": float(np.asarray(popularity)[shown].mean()) if len(shown) else 0.0,
        "gini": gini(counts),
    }
