"""Latency of the full pipeline, one user per request, as the service calls it.

``Recommender.recommend([user], at, k)`` is timed for ``repeats`` users drawn at random among
known users (evaluated at the cutoff) and, apart, among cold ones (seen only after the cutoff;
an id never seen when there are none), at the training as-of time. Its p99 (the worse of the
two) must fit ``serving.latency_budget_ms``. Each stage is then timed alone on the same known
users: ``history and filters`` (the histories as of ``at``, the catalog then, the exclusion
mask), each generator's ``top`` with that mask, and the ordering when there is one; the
costliest stage is named with its fix when the budget is exceeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from taxiway.models.audit.findings import AuditReport
from taxiway.models.audit.latency import percentiles
from taxiway.recommend.audit.context import RecommendAuditContext
from taxiway.recommend.audit.coverage import UNKNOWN_USER
from taxiway.recommend.filters import FilterInputs, exclusion_mask
from taxiway.recommend.ordering import max_per_category
from taxiway.recommend.pipeline import Recommender
from taxiway.recommend.split import to_micros

__all__ = ["HISTORY_STAGE", "check_latency", "stage_timings"]

HISTORY_STAGE = "history and filters"
_WARM_UP = 5


def _timed(action: Callable[[int], Any], count: int) -> list[float]:
    """Durations (s) of ``action(i)`` for ``i`` in ``range(count)``, after a short warm-up."""
    for i in range(min(_WARM_UP, count)):
        action(i)
    samples = []
    for i in range(count):
        began = time.perf_counter()
        action(i)
        samples.append(time.perf_counter() - began)
    return samples


def stage_timings(
    recommender: Recommender, users: list[str], at: datetime, k: int
) -> dict[str, dict[str, float]]:
    """p50/p99 of each stage alone, one user at a time (see the module's docstring)."""
    at_us = to_micros(at)
    codes = recommender.user_codes(users)
    depth = k
    if recommender.max_per_category is not None:
        depth = max([k] + [g.k for _, g in recommender.stages])

    def inputs(i: int) -> tuple[Any, Any, Any]:
        seen = recommender.histories.as_of(codes[i : i + 1], at_us)
        state = recommender.catalog.as_of(at_us)
        mask = exclusion_mask(recommender.filters, FilterInputs(seen, state, recommender.events))
        return seen.matrix(), mask, state

    out = {HISTORY_STAGE: percentiles(_timed(inputs, len(users)))}
    prepared = [inputs(i) for i in range(len(users))]
    for name, generator in recommender.stages:

        def top(i: int, generator: Any = generator) -> None:
            history, mask, _ = prepared[i]
            generator.top(history, depth, exclude=mask)

        out[name] = percentiles(_timed(top, len(users)))
    if recommender.max_per_category is not None:
        limit = recommender.max_per_category
        lists = [
            recommender.ranked(codes[i : i + 1], at_us, depth).items for i in range(len(users))
        ]

        def order(i: int) -> None:
            max_per_category(lists[i], prepared[i][2].category, limit)

        out["ordering"] = percentiles(_timed(order, len(users)))
    return out


def check_latency(ctx: RecommendAuditContext, report: AuditReport) -> None:
    """Time the service's call for known and cold users; a blocker over the budget."""
    recommender = ctx.recommender
    split = ctx.split
    at = ctx.as_of
    k = recommender.k
    budget = ctx.serving.latency_budget_ms
    known = ctx.user_ids(ctx.rng.choice(split.evaluated_users, size=ctx.repeats))
    trained = np.zeros(split.train.n_users, dtype=bool)
    trained[split.train.user] = True
    cold_codes = np.setdiff1d(np.unique(split.test.user), np.flatnonzero(trained))
    cold = (
        ctx.user_ids(ctx.rng.choice(cold_codes, size=ctx.repeats))
        if len(cold_codes)
        else [UNKNOWN_USER] * ctx.repeats
    )
    measured: dict[str, Any] = {"budget_ms": budget, "k": k, "at": at.isoformat()}
    for label, users in (("known", known), ("cold", cold)):

        def one(i: int, users: list[str] = users) -> None:
            recommender.recommend([users[i]], at, k)

        measured[label] = percentiles(_timed(one, len(users)))
    measured["cold_users_are"] = "seen only after the cutoff" if len(cold_codes) else "unknown ids"
    stages = stage_timings(recommender, known[: min(len(known), 100)], at, k)
    measured["stages"] = stages
    costly = max(stages, key=lambda name: stages[name]["p99_ms"])
    measured["costliest_stage"] = costly
    report.measured["latency"] = measured
    worst = max(measured["known"]["p99_ms"], measured["cold"]["p99_ms"])
    if worst > budget:
        report.add(
            "latency",
            "blocker",
            costly,
            f"p99 of one recommendation (the full pipeline, top {k}) is {worst:.2f} ms "
            f"(known users {measured['known']['p99_ms']:.2f} ms, cold "
            f"{measured['cold']['p99_ms']:.2f} ms), over the {budget:g} ms budget; the "
            f"costliest stage alone is `{costly}` at p99 {stages[costly]['p99_ms']:.2f} ms",
            _fix(recommender, costly, budget),
        )


def _fix(recommender: Recommender, stage: str, budget: float) -> str:
    raise_it = f"or raise serving.latency_budget_ms (now {budget:g}) if the caller can wait"
    if stage == HISTORY_STAGE:
        return (
            "the histories and filters cost most: a shorter already_seen lookback, fewer deny "
            f"items, a catalog without a long history of rows, {raise_it}"
        )
    if stage == "ordering":
        return f"the ordering costs most: smaller generator k under the ordering, {raise_it}"
    generator = dict(recommender.stages)[stage]
    kind = generator.kind
    index = (
        f"; set its exact_limit (recommend.candidates) below the catalog's {len(recommender.items):,} items so `{stage}` "
        "answers from the faiss index"
        if kind in ("als", "bpr")
        else ""
    )
    return (
        f"`{stage}` costs most: lower its k (now {generator.k}){index}, drop stages the lists "
        f"rarely need, {raise_it}"
    )
