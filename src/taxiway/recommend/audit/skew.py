"""Skew of the ranking stage: the values the served ranker reads online equal those training
computed offline, point in time.

Observed, never declared: at the time the online store was last materialized (``T``, the
newest of the ranking views' materializations), a sample of the recommender's users and items
is read as the service reads them (:class:`~taxiway.recommend.ranking_online.
OnlineRankingFeatures`: the store judged at ``T``, values made numbers as the ranker takes
them) and recomputed offline as training computes them
(:func:`~taxiway.recommend.ranking_features.view_values` at ``T``). Every column of every
sampled key must be the same float32, a missing value on both sides counting as equal; a
difference is a blocker, with both values. A key the store lacks while offline has a value is
a difference too: the served ranker would read NaN there.

Not applicable when the recommender has no ranking stage, or its ranking reads no feature view
(the popularity column comes from the interactions the recommender holds, not a store).
"""

from __future__ import annotations

from datetime import UTC

import numpy as np
from numpy.typing import NDArray

from taxiway.features.materialize import materialized_as_of
from taxiway.features.online import open_online_store
from taxiway.models.audit.findings import AuditReport
from taxiway.recommend.audit.context import RecommendAuditContext, sample_codes
from taxiway.recommend.ranking_features import POPULARITY_COLUMNS, view_sides, view_values
from taxiway.recommend.ranking_online import OnlineRankingFeatures
from taxiway.recommend.split import to_micros

__all__ = ["check_ranking_skew", "ranks_on_feature_views"]

_REMATERIALIZE = (
    "run `taxiway features materialize` (a stale or partial load is the usual cause) and audit "
    "again; if it persists, run `taxiway features skew` and report the view definition"
)


def ranks_on_feature_views(ctx: RecommendAuditContext) -> bool:
    """Whether the version has a ranking stage and the spec's ranking names feature views."""
    ranking = ctx.spec.ranking
    if ranking is None or not ranking.features:  # the spec first: no loading for nothing
        return False
    return ctx.recommender.ranker is not None


def check_ranking_skew(ctx: RecommendAuditContext, report: AuditReport) -> None:
    """Record a blocker per ranking feature whose served value differs from the offline one."""
    ranker = ctx.recommender.ranker
    recommend = ctx.spec
    if ranker is None or not ranks_on_feature_views(ctx):
        report.checks["skew"] = "not applicable"
        return
    project = ctx.project
    sides = view_sides(project, recommend)
    views = [*sides.user, *sides.item]
    done = materialized_as_of(project)
    missing = [name for name in views if name not in done]
    if missing:
        report.add(
            "skew",
            "warning",
            None,
            f"ranking views {', '.join(missing)} were never materialized: the served ranker "
            "reads them as missing (NaN), and online and offline values cannot be compared",
            "run `taxiway features materialize` and audit again",
        )
        return
    at = max(done[name] for name in views).astimezone(UTC)
    at_us = to_micros(at)
    recommender = ctx.recommender
    users = sample_codes(np.arange(len(recommender.users), dtype=np.int32), ctx.sample, ctx.rng)
    items = sample_codes(np.arange(len(recommender.items), dtype=np.int32), ctx.sample, ctx.rng)
    spec = project.spec
    store = open_online_store(spec.online_store, state_dir=project.state_dir, namespace=spec.name)
    try:
        source = OnlineRankingFeatures(spec, store, sides, ranker.layout)
        served = source.at(at_us, None, recommender.users, recommender.items)
        online_users = served.for_users(users)
        online_items = served.for_items(items)[:, len(POPULARITY_COLUMNS) :]
        offline = view_values(
            project,
            sides,
            users=recommender.users[users],
            items=recommender.items[items],
            moments=[at_us],
            as_of=at,
        )
        _, offline_users, _, offline_items = offline(at_us)
    except Exception as error:  # any failure to compare is itself the finding
        report.add(
            "skew",
            "blocker",
            None,
            f"the ranking features could not be compared online vs offline: "
            f"{type(error).__name__}: {str(error).splitlines()[0]}",
            getattr(error, "fix", None) or _REMATERIALIZE,
        )
        return
    finally:
        store.close()
    misses = source.take_misses()
    user_columns = ranker.layout.user_columns
    item_columns = ranker.layout.item_columns[len(POPULARITY_COLUMNS) :]
    differences = 0
    for side, ids, columns, online, expected in (
        ("user", recommender.users[users], user_columns, online_users, offline_users),
        ("item", recommender.items[items], item_columns, online_items, offline_items),
    ):
        for index, column in enumerate(columns):
            bad = _differ(online[:, index], expected[:, index])
            if not bad.any():
                continue
            differences += int(bad.sum())
            examples = [
                f"{side} {ids[row]}: online {_shown(online[row, index])}, offline "
                f"{_shown(expected[row, index])}"
                for row in np.flatnonzero(bad)[:3].tolist()
            ]
            report.add(
                "skew",
                "blocker",
                f"{side}__{column}",
                f"{int(bad.sum())} of {len(ids)} sampled {side}s differ between what the served "
                f"ranker reads at {at.isoformat()} and the offline value then, e.g. "
                + "; ".join(examples),
                _REMATERIALIZE,
            )
    report.measured["skew"] = {
        "as_of": at.isoformat(),
        "users": len(users),
        "items": len(items),
        "compared": len(users) * len(user_columns) + len(items) * len(item_columns),
        "differences": differences,
        "missing_online": {f"{view} ({status})": n for (view, status), n in misses.items()},
    }


def _differ(online: NDArray[np.float32], offline: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Where two columns are not the same value (NaN on both sides is the same: missing)."""
    both_missing = np.isnan(online) & np.isnan(offline)
    same: NDArray[np.bool_] = (online == offline) | both_missing
    return ~same


def _shown(value: np.float32) -> str:
    return "missing" if np.isnan(value) else repr(float(value))
