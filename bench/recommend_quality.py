"""recommend.py's quality part: the simulator's data at MovieLens-1M scale, its global time
split, and each algorithm through taxiway's generators beside the same algorithm called
directly (implicit, numpy) on the same training matrix, judged by the same metrics.

The protocol, the same on both sides: train on ``split.train.matrix()`` (users x catalog items,
quantities summed; views and carts weigh 1), ask each model for the top-10 of every evaluated
user (a user seen before and after the cutoff) from the user's training row, nothing excluded
(no filter: the generators are compared, not the pipeline), and judge against the distinct
items the user touched after the cutoff. Metrics are taxiway's ``ranking_metrics`` and a
per-user loop written here from the textbook definitions; their largest disagreement is
printed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
SIMULATOR = HERE.parent / "examples" / "shop-recs" / "simulate.py"
K = 10
POPULAR_WINDOW = timedelta(days=30)
NEIGHBOURS, L2 = 100, 500.0
ALS = {"factors": 64, "iterations": 15, "regularization": 0.01, "alpha": 1.0}

Codes = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Problem:
    """The split as matrices: what every model is fitted on and judged by."""

    train: Any  # taxiway.recommend.interactions.Interactions (training side)
    matrix: sp.csr_matrix  # users x items, summed weights
    users: npt.NDArray[np.int32]  # evaluated users
    history: sp.csr_matrix  # their training rows
    relevant: sp.csr_matrix  # their items after the cutoff (1s)
    facts: dict[str, Any]
    data: Any  # every clean interaction (Interactions): the pipeline's histories
    split: Any  # taxiway.recommend.split.RecommendSplit


def simulated(folder: Path, users: int, items: int, interactions: int, seed: int) -> float:
    """Run the shop simulator into ``folder`` once; seconds it took (0 when already there)."""
    if (folder / "truth.json").exists():
        return 0.0
    began = time.perf_counter()
    argv = [sys.executable, str(SIMULATOR), "--out", str(folder), "--users", str(users)]
    argv += ["--items", str(items), "--interactions", str(interactions), "--seed", str(seed)]
    subprocess.run(argv, check=True, capture_output=True, text=True)
    return time.perf_counter() - began


def problem(folder: Path) -> Problem:
    """The clean interactions (the rows the spec's contracts would keep), split at the default
    cutoff (the last 10% of the time range) by taxiway's ``time_split``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from taxiway.recommend.interactions import Interactions
    from taxiway.recommend.split import time_split

    products = pq.read_table(folder / "products.parquet")
    catalog = sorted(set(products.column("product_id").to_pylist()))
    table = pq.read_table(folder / "interactions.parquet")
    rows = len(table)
    keep = pc.and_(
        pc.and_(pc.is_valid(table["customer_id"]), pc.greater(table["quantity"], 0)),
        pc.is_in(table["product_id"], value_set=products.column("product_id").unique()),
    )
    table = table.filter(keep)
    data = Interactions.from_arrow(
        table, user="customer_id", item="product_id", at="occurred_at", weight="quantity",
        event="event", items=catalog,
    )  # fmt: skip
    split = time_split(data)
    matrix = split.train.matrix().tocsr()
    users = split.evaluated_users
    facts = {
        "rows": rows,
        "clean_rows": len(table),
        "users": data.n_users,
        "items": data.n_items,
        "split": split.describe(),
        "train_pairs": int(matrix.nnz),
    }
    return Problem(split.train, matrix, users, matrix[users], split.relevant(), facts, data, split)


# --------------------------------------------------------------------------- direct peers


def top_of(scores: npt.NDArray[np.float32], k: int = K) -> Codes:
    """The k best columns of each row, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int32)


def direct_popularity(p: Problem) -> Callable[[], Codes]:
    at, item, weight = p.train.at, p.train.item, p.train.weight
    keep = at > at.max() - POPULAR_WINDOW // timedelta(microseconds=1)
    counts = np.bincount(item[keep], weights=weight[keep], minlength=p.matrix.shape[1])
    best = np.argsort(-counts, kind="stable")[:K].astype(np.int32)
    return lambda: np.tile(best, (len(p.users), 1))


def direct_ease(p: Problem, binary: bool) -> Callable[[], Codes]:
    x = p.matrix.copy()
    if binary:
        x.data[:] = 1.0
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += L2
    inverse = np.linalg.inv(gram)
    b = -inverse / np.diag(inverse)
    b[np.diag_indices_from(b)] = 0.0
    b32 = b.astype(np.float32)
    history = p.history.copy()
    if binary:
        history.data[:] = 1.0
    return lambda: top_of(np.asarray(history @ b32))


def binarised(matrix: sp.csr_matrix, dtype: type = np.float32) -> sp.csr_matrix:
    out = matrix.astype(dtype)
    out.data[:] = 1.0
    return out


def direct_implicit(
    p: Problem,
    make: Callable[[], Any],
    binary: bool = False,
    dtype: type = np.float32,
    no_self: bool = False,
) -> Callable[[], Codes]:
    """Fit an implicit model on the training matrix (binarised when ``binary``, as taxiway's
    ItemKNN and EASE do), one BLAS thread as implicit asks; score the evaluated users.

    ``no_self``: implicit's nearest-neighbour models count an item among its own K
    neighbours (similarity 1 on the diagonal), so a history item scores itself; taxiway's
    ItemKNN keeps ``neighbours`` OTHER items. Asked with K + 1, the diagonal zeroed after the
    fit and its scorer rebuilt, implicit computes the same thing (the lists agree but for
    near-ties at the K-th neighbour, float32 against float64)."""
    from threadpoolctl import threadpool_limits

    matrix = binarised(p.matrix, dtype) if binary else p.matrix.astype(dtype)
    history = matrix[p.users]
    with threadpool_limits(1, "blas"):
        model = make()
        model.fit(matrix, show_progress=False)
        if no_self:
            from implicit._nearest_neighbours import NearestNeighboursScorer

            model.similarity.setdiag(0.0)
            model.similarity.eliminate_zeros()
            model.scorer = NearestNeighboursScorer(model.similarity)  # fit built it from S

    def recommend() -> Codes:
        with threadpool_limits(1, "blas"):
            ids, _ = model.recommend(p.users, history, N=K, filter_already_liked_items=False)
        return np.asarray(ids, dtype=np.int32)

    return recommend


def direct_models(seed: int) -> dict[str, Callable[[Problem], Callable[[], Codes]]]:
    """The peers: name -> fit (timed) returning the scoring call (timed apart). The first
    of each family is the one taxiway is compared with."""
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender, ItemItemRecommender

    def als(random_state: int) -> Callable[[Problem], Callable[[], Codes]]:
        return lambda p: direct_implicit(
            p, lambda: AlternatingLeastSquares(**ALS, random_state=random_state)
        )

    return {
        "popularity": direct_popularity,
        "itemknn": lambda p: direct_implicit(
            p, lambda: CosineRecommender(K=NEIGHBOURS + 1), binary=True, no_self=True
        ),
        "itemknn (implicit Cosine as shipped: self among K)": lambda p: direct_implicit(
            p, lambda: CosineRecommender(K=NEIGHBOURS), binary=True
        ),
        "itemknn (implicit ItemItem: co-counts)": lambda p: direct_implicit(
            p,
            lambda: ItemItemRecommender(K=NEIGHBOURS + 1),
            binary=True,
            dtype=np.float64,
            no_self=True,
        ),
        "als": als(seed),
        "als (another seed)": als(seed + 1),
        "ease": lambda p: direct_ease(p, binary=True),
        "ease (weighted X)": lambda p: direct_ease(p, binary=False),
    }


# --------------------------------------------------------------------------- taxiway


def taxiway_models() -> dict[str, Callable[[Problem], Callable[[], Codes]]] | str:
    """taxiway's generators through ``generator_for`` (the contract's factory), or why not."""
    try:
        from taxiway.recommend.generators import generator_for
        from taxiway.spec import (
            AlsGenerator,
            EaseGenerator,
            ItemKnnGenerator,
            PopularityGenerator,
        )
    except ImportError as error:
        return f"taxiway's generators are not importable yet ({error})"
    specs = {
        "popularity": PopularityGenerator(kind="popularity", k=K, window=POPULAR_WINDOW),
        "itemknn": ItemKnnGenerator(kind="itemknn", k=K, neighbours=NEIGHBOURS),
        "als": AlsGenerator(kind="als", k=K, **ALS),
        "ease": EaseGenerator(kind="ease", k=K, l2=L2),
    }

    def fitted(name: str, spec: Any) -> Callable[[Problem], Callable[[], Codes]]:
        def fit(p: Problem) -> Callable[[], Codes]:
            generator = generator_for(spec)
            generator.fit(p.train)
            FITTED[name] = generator
            return lambda: np.asarray(generator.top(p.history, K)[0], dtype=np.int32)

        return fit

    return {name: fitted(name, spec) for name, spec in specs.items()}


FITTED: dict[str, Any] = {}
"""taxiway's generators as fitted for their rows, reused by the pipeline's rows."""


def pipeline_models() -> dict[str, Callable[[Problem], Callable[[], Codes]]]:
    """The same fitted generators inside taxiway's ``Recommender`` (the one code path of
    evaluation and serving: histories as of the cutoff, filters, fallbacks), asked for one
    stage at a time with no filter, so its lists must equal the generator's. Its "fit" is
    the Recommender's assembly (the generators' fit is in their own rows)."""
    from taxiway.recommend.catalog import Catalog
    from taxiway.recommend.evaluation import lists_at_cutoff
    from taxiway.recommend.history import Histories
    from taxiway.recommend.pipeline import Recommender

    def staged(name: str) -> Callable[[Problem], Callable[[], Codes]]:
        def fit(p: Problem) -> Callable[[], Codes]:
            stages = [(kind, FITTED[kind]) for kind in (name, "popularity") if kind in FITTED]
            stages = list(dict(stages).items())
            recommender = Recommender(
                stages, filters=[], catalog=Catalog.listing(p.data.n_items),
                histories=Histories.of(p.data), items=p.data.items, users=p.data.users,
                events=p.data.events, k=K, popularity_stage="popularity",
            )  # fmt: skip
            return lambda: lists_at_cutoff(recommender, p.split, K, stages=[name]).items

        return fit

    return {name: staged(name) for name in ("popularity", "itemknn", "als", "ease")}


# --------------------------------------------------------------------------- metrics


def own_metrics(recommended: Codes, relevant: sp.csr_matrix) -> dict[str, float]:
    """recall@10 and NDCG@10 per user from the textbook definitions, averaged over users."""
    recalls, ndcgs = [], []
    for row in range(relevant.shape[0]):
        truth = set(relevant.indices[relevant.indptr[row] : relevant.indptr[row + 1]].tolist())
        if not truth:
            continue
        listed = [int(i) for i in recommended[row, :K] if i >= 0]
        gains = [1.0 / np.log2(rank + 2) for rank, i in enumerate(listed) if i in truth]
        ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(K, len(truth))))
        recalls.append(len(gains) / len(truth))
        ndcgs.append(sum(gains) / ideal)
    return {f"recall@{K}": float(np.mean(recalls)), f"ndcg@{K}": float(np.mean(ndcgs))}


def judged(p: Problem, fit: Callable[[Problem], Callable[[], Codes]]) -> dict[str, Any]:
    """Fit (timed), score every evaluated user (timed), and both metric implementations."""
    began = time.perf_counter()
    score = fit(p)
    fitted_s = time.perf_counter() - began
    began = time.perf_counter()
    recommended = score()
    scored_s = time.perf_counter() - began
    from taxiway.recommend.metrics import ranking_metrics

    ours = ranking_metrics(recommended, p.relevant, K)
    own = own_metrics(recommended, p.relevant)
    disagreement = max(abs(ours[name] - own[name]) for name in own)
    return {
        "fit_s": fitted_s,  # the fit, and for the direct peers the matrix they are given
        "score_s": scored_s,
        "recall": ours[f"recall@{K}"],
        "ndcg": ours[f"ndcg@{K}"],
        "map": ours[f"map@{K}"],
        "hit_rate": ours[f"hit_rate@{K}"],
        "metrics_disagreement": disagreement,
        "distinct_items": int(np.unique(recommended[recommended >= 0]).size),
    }
