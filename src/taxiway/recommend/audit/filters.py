"""Filters parity: what evaluation scored and what the service shows exclude the same items.

What each filter excludes is computed here again from the spec's ``filters:`` and the data
re-read through the sources (never from the filter objects inside the artifact, which is what
is under test): ``already_seen`` the user's interactions within ``lookback`` before the time
(of its event types), ``unavailable`` the catalog source's rows as of the time, ``deny`` the
deny source's items. Then, for a sample of evaluated users:

- the lists the evaluation scored, recomputed through :meth:`Recommender.recommend` at the
  cutoff (the one code path evaluation used), and
- the service's lists at the training as-of time, from the Recommender loaded from the artifact
  as the service loads it, asked for each path it can take (the model, each fallback, and the
  model with an item from the request's ``recent_items``),

must hold none of those items. Each leak is a blocker naming the filter, the path, the user and
the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from taxiway.models.audit.findings import AuditReport
from taxiway.recommend.audit.context import RecommendAuditContext, sample_codes, service_paths
from taxiway.recommend.pipeline import Recommendation
from taxiway.recommend.split import from_micros, to_micros
from taxiway.spec.recommend import AlreadySeenFilter, DenyFilter, UnavailableFilter

__all__ = ["Leak", "check_filters", "excluded_items", "leaks_in"]

_EXAMPLES = 3


@dataclass(frozen=True)
class Leak:
    """One item a list held although a filter excludes it for that user at that time."""

    path: str
    filter: str
    user: str
    item: str


@dataclass
class _Exclusions:
    """What each declared filter excludes, per user, at one time (from the re-read data)."""

    at_us: int
    shared: dict[str, set[str]] = field(default_factory=dict)  # filter -> items, every user
    seen: dict[str, set[str]] = field(default_factory=dict)  # user -> items already seen


def excluded_items(ctx: RecommendAuditContext, users: Sequence[str], at: datetime) -> _Exclusions:
    """What the spec's filters exclude for ``users`` at ``at``, from the re-read data."""
    at_us = to_micros(at)
    data = ctx.data
    out = _Exclusions(at_us)
    items = data.interactions.items
    for rule in ctx.spec.filters:
        if isinstance(rule, UnavailableFilter):
            state = data.catalog.as_of(at_us)
            out.shared["unavailable"] = {str(items[c]) for c in np.flatnonzero(~state.available)}
        elif isinstance(rule, DenyFilter):
            out.shared.setdefault("deny", set()).update(data.denied)
        elif isinstance(rule, AlreadySeenFilter):
            seen = data.interactions
            keep = seen.at < at_us
            if rule.lookback is not None:
                keep &= seen.at >= at_us - int(rule.lookback.total_seconds() * 1_000_000)
            if rule.event_types:
                codes = [c for c, name in enumerate(seen.events) if name in rule.event_types]
                keep &= np.isin(seen.event, codes)
            wanted = {seen.user_code(u): u for u in users} if users else {}
            keep &= np.isin(seen.user, [c for c in wanted if c >= 0])
            for user, item in zip(seen.user[keep].tolist(), seen.item[keep].tolist(), strict=True):
                out.seen.setdefault(wanted[user], set()).add(str(items[item]))
    return out


def leaks_in(
    path: str,
    users: Sequence[str],
    lists: Sequence[Sequence[Recommendation]],
    exclusions: _Exclusions,
) -> list[Leak]:
    """Every item of ``lists`` (one per user) that a filter excludes for its user."""
    found = []
    for user, answer in zip(users, lists, strict=True):
        for rec in answer:
            if rec.item in exclusions.seen.get(user, ()):
                found.append(Leak(path, "already_seen", user, rec.item))
            for name, banned in exclusions.shared.items():
                if rec.item in banned:
                    found.append(Leak(path, name, user, rec.item))
    return found


def check_filters(ctx: RecommendAuditContext, report: AuditReport) -> None:
    """Recompute the evaluation's and the service's lists and record every filter leak."""
    recommender = ctx.recommender
    split = ctx.split
    users = ctx.user_ids(sample_codes(split.evaluated_users, ctx.sample, ctx.rng))
    cutoff = from_micros(split.cutoff_us)
    leaks = leaks_in(
        "evaluation",
        users,
        recommender.recommend(users, cutoff, recommender.k),
        excluded_items(ctx, users, cutoff),
    )
    served_at = ctx.as_of
    now = excluded_items(ctx, users, served_at)
    paths = service_paths(recommender)
    for path, stages in paths:
        lists = recommender.recommend(users, served_at, recommender.k, stages=stages)
        leaks += leaks_in(path, users, lists, now)
    # the request's recent items join the history at the time asked: an already_seen over
    # every event type must exclude them too (one with event types does not: they have none)
    recent = [[str(item)] for item in ctx.rng.choice(recommender.items, size=len(users))]
    with_recent = _Exclusions(now.at_us, now.shared, {u: set(s) for u, s in now.seen.items()})
    if any(isinstance(r, AlreadySeenFilter) and not r.event_types for r in ctx.spec.filters):
        for user, items in zip(users, recent, strict=True):
            with_recent.seen.setdefault(user, set()).update(items)
    lists = recommender.recommend(users, served_at, recommender.k, recent=recent)
    leaks += leaks_in("model with recent items", users, lists, with_recent)
    report.measured["filters"] = {
        "users": len(users),
        "filters": [rule.kind for rule in ctx.spec.filters],
        "evaluation_at": cutoff.isoformat(),
        "service_at": served_at.isoformat(),
        "service_paths": [path for path, _ in paths] + ["model with recent items"],
        "leaks": len(leaks),
    }
    groups: dict[tuple[str, str], list[Leak]] = {}
    for leak in leaks:
        groups.setdefault((leak.filter, leak.path), []).append(leak)
    for (name, path), found in sorted(groups.items()):
        when = cutoff if path == "evaluation" else served_at
        shown = "; ".join(f"`{x.item}` to user `{x.user}`" for x in found[:_EXAMPLES])
        more = f" and {len(found) - _EXAMPLES} more" if len(found) > _EXAMPLES else ""
        where = (
            "the lists the evaluation scored"
            if path == "evaluation"
            else f"the service's `{path}` lists"
        )
        report.add(
            "filters",
            "blocker",
            name,
            f"{where} at {when.isoformat()} hold {len(found):,} item(s) the `{name}` filter "
            f"excludes: {shown}{more}",
            _fix(name, path),
        )


def _fix(name: str, path: str) -> str:
    if name == "already_seen":
        return (
            "the Recommender must be built with the spec's already_seen filter and every user's "
            "history (retrain with `taxiway train`); never pass a history that ends before the "
            "time asked"
        )
    where = "the saved Recommender's filters" if path != "evaluation" else "the filters"
    return (
        f"{where} must include `{name}` as the spec declares it (and its source read as of the "
        "time asked): retrain with `taxiway train` so evaluation and serving share one filter set"
    )
