"""Training the ranking stage on the past alone: examples at times before the cutoff.

For each training time ``T`` (default: one, ``window`` before the cutoff, ``window`` being the
evaluation's span after the cutoff, at most half the training span):

1. fresh generators (the spec's, from ``make_stages``) are fitted on the interactions strictly
   before ``T``;
2. each user known before ``T`` who interacted in ``[T, cutoff)`` gets the candidates the
   pipeline would give at ``T`` (:meth:`Recommender.candidates`: histories and filters as of
   ``T``, every generator's top k united) with their features from the snapshot at ``T``
   (popularity and feature views as of ``T``);
3. a candidate's label is 1 when the user interacted with it in ``[T, cutoff)``: no
   interaction at or after the cutoff is ever read (the input is cut at the cutoff first), so
   the evaluation after the cutoff stays unseen. Users whose candidates hold no positive are
   left out (lambdarank learns nothing from them);
4. ``lightgbm.LGBMRanker(objective="lambdarank")`` is fitted with one query group per (time,
   user).

The ranker keeps the snapshots at the training times, at the cutoff (evaluation) and at
``serving_at_us`` (the end of training: what a caller without an online store reads; the
service reads the feature views from the online store at the request time instead,
:mod:`~taxiway.recommend.ranking_online`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.catalog import Catalog
from taxiway.recommend.filters import ExclusionFilter
from taxiway.recommend.generators import Generator
from taxiway.recommend.history import Histories
from taxiway.recommend.interactions import Interactions
from taxiway.recommend.pipeline import Recommender
from taxiway.recommend.ranking import Candidates, FeatureLayout, Ranker
from taxiway.recommend.ranking_features import (
    FeaturesAt,
    Snapshots,
    snapshot_builder,
    view_sides,
    view_values,
)
from taxiway.recommend.split import to_micros
from taxiway.spec.project import Project
from taxiway.spec.recommend import RecommendSpec

__all__ = [
    "DEFAULT_PARAMS",
    "Examples",
    "default_training_times",
    "ranking_examples",
    "train_ranker",
    "train_spec_ranker",
]

DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "random_state": 0,
    "deterministic": True,
    "force_row_wise": True,
    "n_jobs": 2,
    "verbose": -1,
}
"""LightGBM parameters the spec's ``ranking.params`` override."""

StageFactory = Callable[[int], list[tuple[str, Generator]]]
"""Fresh, unfitted generators in the recommender's stage order, for a training time in µs
(segment popularity segments by the catalog's categories as of then)."""


@dataclass(frozen=True, eq=False)
class Examples:
    """Candidates at one training time with their labels (1: interacted in the window)."""

    at_us: int
    users: NDArray[np.int32]
    candidates: Candidates
    labels: NDArray[np.int32]
    label_max_at_us: int | None
    """The newest interaction read for a label (always before the cutoff)."""
    fit_seconds: float


def default_training_times(interactions: Interactions, cutoff_us: int) -> list[int]:
    """One time before the cutoff: ``cutoff - window``, ``window`` the evaluation's span after
    the cutoff, at most half the span before it (a tenth of it when nothing follows)."""
    before = interactions.at[interactions.at < cutoff_us]
    if not len(before):
        raise ModelError(
            "no interaction before the cutoff: the ranker has nothing to learn from",
            fix="move recommend.split.cutoff later",
        )
    span = cutoff_us - int(before.min())
    after = interactions.at[interactions.at >= cutoff_us]
    window = int(after.max()) - cutoff_us + 1 if len(after) else span // 10
    window = max(1, min(window, span // 2))
    return [cutoff_us - window]


def ranking_examples(
    make_stages: StageFactory,
    interactions: Interactions,
    cutoff_us: int,
    at_us: int,
    features_at: FeaturesAt,
    *,
    filters: Sequence[ExclusionFilter],
    catalog: Catalog,
    k: int,
    popularity_stage: str = "popularity",
    max_per_category: int | None = None,
) -> Examples:
    """The labelled candidates at ``at_us`` (steps 1-3 of the module's docstring)."""
    if at_us >= cutoff_us:
        raise ModelError(
            f"a ranking training time ({at_us}) must come before the cutoff ({cutoff_us})",
            fix="pick training times before the cutoff",
        )
    known = interactions.before(cutoff_us)
    past = known.before(at_us)
    stages = make_stages(at_us)
    began = time.perf_counter()
    for _, generator in stages:
        generator.fit(past)
    fit_seconds = time.perf_counter() - began
    recommender = Recommender(
        stages,
        filters=filters,
        catalog=catalog,
        histories=Histories.of(known),
        items=known.items,
        users=known.users,
        events=known.events,
        k=k,
        popularity_stage=popularity_stage,
        max_per_category=max_per_category,
    )
    window = known.where(known.at >= at_us)
    users = np.intersect1d(np.unique(past.user), np.unique(window.user)).astype(np.int32)
    found = recommender.candidates(users, at_us, k, snapshot=features_at(at_us))
    n_items = known.n_items
    future = np.unique(window.user.astype(np.int64) * n_items + window.item)
    labels = np.isin(users[found.row].astype(np.int64) * n_items + found.item, future)
    return Examples(
        at_us=at_us,
        users=users,
        candidates=found,
        labels=labels.astype(np.int32),
        label_max_at_us=int(window.at.max()) if len(window) else None,
        fit_seconds=fit_seconds,
    )


def train_ranker(
    make_stages: StageFactory,
    interactions: Interactions,
    cutoff_us: int,
    features_at: FeaturesAt,
    *,
    filters: Sequence[ExclusionFilter],
    catalog: Catalog,
    k: int,
    serving_at_us: int | None = None,
    popularity_stage: str = "popularity",
    max_per_category: int | None = None,
    params: dict[str, Any] | None = None,
    times: Sequence[int] | None = None,
) -> Ranker:
    """Fit the ranking stage on examples before the cutoff (the module's steps); its
    ``facts`` say what it learnt from and how long each part took."""
    import lightgbm

    chosen = sorted(times) if times else default_training_times(interactions, cutoff_us)
    examples = [
        ranking_examples(
            make_stages,
            interactions,
            cutoff_us,
            at,
            features_at,
            filters=filters,
            catalog=catalog,
            k=k,
            popularity_stage=popularity_stage,
            max_per_category=max_per_category,
        )
        for at in chosen
    ]
    features, labels, groups = [], [], []
    for example in examples:
        found = example.candidates
        positives = np.bincount(found.row, weights=example.labels, minlength=found.n_rows)
        keep = positives[found.row] > 0
        features.append(found.features[keep])
        labels.append(example.labels[keep])
        counts = np.bincount(found.row[keep], minlength=found.n_rows)
        groups.append(counts[counts > 0])
    x = np.vstack(features)
    y = np.concatenate(labels)
    group = np.concatenate(groups)
    if not len(group):
        raise ModelError(
            "the ranker has nothing to learn from: no user interacted, in the window before "
            "the cutoff, with an item the generators retrieved",
            fix="raise the generators' k, move the cutoff later, or drop recommend.ranking",
        )
    layout = examples[0].candidates.layout
    ranker = lightgbm.LGBMRanker(objective="lambdarank", **{**DEFAULT_PARAMS, **(params or {})})
    began = time.perf_counter()
    try:
        ranker.fit(x, y, group=group, feature_name=layout.names)
    except (ValueError, lightgbm.basic.LightGBMError) as error:
        raise ModelError(
            f"LightGBM refused the ranking data or recommend.ranking.params: {error}",
            fix="check recommend.ranking.params against LightGBM's documented parameters",
        ) from None
    fit_seconds = time.perf_counter() - began
    moments = [*chosen, cutoff_us]
    if serving_at_us is not None and serving_at_us > cutoff_us:
        moments.append(serving_at_us)
    snapshots = Snapshots([features_at(at) for at in dict.fromkeys(moments)])
    for snapshot in snapshots.snapshots:
        _check_layout(layout, snapshot.user_columns, snapshot.item_columns)
    label_max = [e.label_max_at_us for e in examples if e.label_max_at_us is not None]
    facts = {
        "training_times": [_iso(at) for at in chosen],
        "cutoff": _iso(cutoff_us),
        "label_max_at": _iso(max(label_max)) if label_max else None,
        "groups": len(group),
        "candidates": len(y),
        "positives": int(y.sum()),
        "features": layout.names,
        "params": {**DEFAULT_PARAMS, **(params or {})},
        "snapshots": [_iso(s.at_us) for s in snapshots.snapshots],
        "generators_seconds": round(sum(e.fit_seconds for e in examples), 3),
        "fit_seconds": round(fit_seconds, 3),
    }
    return Ranker(ranker.booster_, layout, snapshots, facts)


def train_spec_ranker(
    project: Project,
    recommend: RecommendSpec,
    make_stages: StageFactory,
    interactions: Interactions,
    cutoff_us: int,
    *,
    filters: Sequence[ExclusionFilter],
    catalog: Catalog,
    as_of: datetime | None = None,
) -> Ranker:
    """:func:`train_ranker` for a spec's ``recommend.ranking``: the feature views it names
    computed through taxiway's offline path at the training times, at the cutoff and at the
    end of training (``as_of``, else now: the snapshot read without an online store)."""
    ranking = recommend.ranking
    if ranking is None:
        raise ModelError("the spec has no recommend.ranking", fix="add one or skip the ranker")
    sides = view_sides(project, recommend)
    times = default_training_times(interactions, cutoff_us)
    newest = int(interactions.at.max()) + 1 if len(interactions) else cutoff_us
    serving_at = (
        to_micros(as_of) if as_of is not None else max(to_micros(datetime.now(UTC)), newest)
    )
    views = None
    if sides.user or sides.item:
        views = view_values(
            project,
            sides,
            users=interactions.users,
            items=interactions.items,
            moments=[*times, cutoff_us, serving_at],
            as_of=as_of,
        )
    return train_ranker(
        make_stages,
        interactions,
        cutoff_us,
        snapshot_builder(interactions, views),
        filters=filters,
        catalog=catalog,
        k=recommend.k,
        serving_at_us=serving_at,
        max_per_category=recommend.ordering.max_per_category if recommend.ordering else None,
        params=ranking.params,
        times=times,
    )


def _check_layout(
    layout: FeatureLayout, user_columns: tuple[str, ...], item_columns: tuple[str, ...]
) -> None:
    if (user_columns, item_columns) != (layout.user_columns, layout.item_columns):
        raise ModelError(
            "the feature snapshots do not all have the same columns",
            fix="compute every snapshot with the same views",
        )


def _iso(at_us: int) -> str:
    return datetime.fromtimestamp(at_us / 1e6, UTC).isoformat()
