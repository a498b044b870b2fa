"""Judge a recommender on the time split, beside popularity through the same pipeline.

Every evaluated user (seen before and after the cutoff, :mod:`~taxiway.recommend.split`) gets
the list :meth:`Recommender.ranked` gives at the cutoff: their history as of the cutoff (the
training interactions), the filters and ordering as of the cutoff. The same users get the
popularity stage's list from the same recommender (``stages=[popularity_stage]``): same
filters, same ordering, so the baseline is the one a team would really ship. Both are scored on
what each user did at or after the cutoff (:mod:`~taxiway.recommend.metrics`), at the spec's
``k`` and at the metric's own k when it differs; the model beats popularity when it scores
strictly higher on the declared metric.

With a ranking stage, the same users' lists without it (every generator in order, the
primary first: ``stages=recommender.generators``) are scored too (``unranked``), so the
ranker's gain is measured, not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from taxiway.recommend.interactions import Interactions
from taxiway.recommend.metrics import catalog_metrics, parse_metric, ranking_metrics
from taxiway.recommend.pipeline import Ranked, Recommender
from taxiway.recommend.split import RecommendSplit

__all__ = ["Evaluation", "evaluate", "item_popularity", "lists_at_cutoff"]


@dataclass(frozen=True)
class Evaluation:
    """The model's and popularity's metrics on the split, and the verdict."""

    metric: str
    k: int
    model: dict[str, float]
    popularity: dict[str, float]
    users: int
    stage_share: dict[str, float] = field(default_factory=dict)
    """Share of the model's recommended slots each stage filled (fallback use)."""
    unranked: dict[str, float] | None = None
    """With a ranking stage: the same pipeline's metrics without it (None: no ranker)."""

    @property
    def beats_baseline(self) -> bool:
        """Whether the model scored strictly higher than popularity on ``metric``."""
        return self.model[self.metric] > self.popularity[self.metric]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "metric": self.metric,
            "k": self.k,
            "model": self.model,
            "popularity": self.popularity,
            "users": self.users,
            "stage_share": self.stage_share,
            "beats_baseline": self.beats_baseline,
            **({"unranked": self.unranked} if self.unranked is not None else {}),
        }


def item_popularity(train: Interactions) -> NDArray[np.float64]:
    """Per item code, the share of training users who interacted with it (0..1)."""
    pairs = np.unique(train.user.astype(np.int64) * train.n_items + train.item)
    counts = np.bincount(pairs % train.n_items, minlength=train.n_items)
    users = len(np.unique(train.user))
    return counts / users if users else counts.astype(np.float64)


def lists_at_cutoff(
    recommender: Recommender,
    split: RecommendSplit,
    k: int,
    stages: list[str] | None = None,
) -> Ranked:
    """The lists of the evaluated users at the cutoff (rows in ``split.evaluated_users``
    order), from the recommender's one code path."""
    return recommender.ranked(split.evaluated_users, split.cutoff_us, k, stages=stages)


def evaluate(recommender: Recommender, split: RecommendSplit, metric: str) -> Evaluation:
    """The model and popularity on ``split``: ranking metrics at ``recommender.k`` (and at
    ``metric``'s k), coverage, average popularity and Gini at ``recommender.k``."""
    _, metric_k = parse_metric(metric)
    k = recommender.k
    depth = max(k, metric_k)
    relevant = split.relevant()
    popularity = item_popularity(split.train)
    n_items = len(recommender.items)

    def score(ranked: Ranked) -> dict[str, float]:
        out = ranking_metrics(ranked.items, relevant, k)
        if metric_k != k:
            out.update(ranking_metrics(ranked.items, relevant, metric_k))
        out.update(catalog_metrics(ranked.items[:, :k], popularity, n_items))
        return out

    model = lists_at_cutoff(recommender, split, depth)
    baseline = lists_at_cutoff(recommender, split, depth, [recommender.popularity_stage])
    filled = model.stage[:, :k]
    shown = max(int((filled >= 0).sum()), 1)
    share = {
        name: float((filled == index).sum() / shown) for index, name in enumerate(model.stages)
    }
    unranked = None
    if recommender.ranker is not None:
        unranked = score(lists_at_cutoff(recommender, split, depth, recommender.generators))
    return Evaluation(
        metric=metric,
        k=k,
        model=score(model),
        popularity=score(baseline),
        users=len(split.evaluated_users),
        stage_share=share,
        unranked=unranked,
    )
