"""Coverage: who and what the model cannot know, how many, and what the service answers them.

- cold users: users whose interactions all come at or after the cutoff (the model never saw
  them; evaluation counts them apart). Their lists at the training as-of time are asked of the
  saved Recommender: the share of their slots each stage filled says whether the service
  personalises them from their later history or answers popularity (and a user with no history
  at all, such as an id never seen, gets popularity only: the service marks it ``degraded``).
- cold items: items the catalog lists as of the as-of time with no training interaction: no
  collaborative model can recommend them; the share of them any sampled list shows is measured.

A share above :data:`COLD_USER_LIMIT` or :data:`COLD_ITEM_LIMIT` is a warning with the fix.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from taxiway.models.audit.findings import AuditReport
from taxiway.recommend.audit.context import RecommendAuditContext, sample_codes
from taxiway.recommend.split import to_micros

__all__ = ["COLD_ITEM_LIMIT", "COLD_USER_LIMIT", "UNKNOWN_USER", "check_coverage"]

COLD_USER_LIMIT = 0.20
"""Above this share of users seen only after the cutoff, a warning."""
COLD_ITEM_LIMIT = 0.30
"""Above this share of listed items never in training, a warning."""
UNKNOWN_USER = "\x00taxiway-audit-unknown-user"
"""An id no source holds: what the service answers a user it has never seen."""


def check_coverage(ctx: RecommendAuditContext, report: AuditReport) -> None:
    """Count cold users and items, ask the Recommender for them, warn above the limits."""
    recommender = ctx.recommender
    split = ctx.split
    data = ctx.data.interactions
    at = ctx.as_of
    active = len(np.unique(data.user))
    trained_users = np.zeros(data.n_users, dtype=bool)
    trained_users[split.train.user] = True
    cold_codes = np.setdiff1d(np.unique(split.test.user), np.flatnonzero(trained_users))
    cold_users = ctx.user_ids(sample_codes(cold_codes.astype(np.int32), ctx.sample, ctx.rng))
    listed = ctx.data.catalog.as_of(to_micros(at)).available
    listed_codes = np.unique(ctx.data.catalog.item[ctx.data.catalog.at <= to_micros(at)])
    trained_items = np.zeros(data.n_items, dtype=bool)
    trained_items[split.train.item] = True
    cold_items = {str(data.items[c]) for c in listed_codes if not trained_items[c]}
    user_share = len(cold_codes) / active if active else 0.0
    item_share = len(cold_items) / len(listed_codes) if len(listed_codes) else 0.0
    stages: Counter[str] = Counter()
    for answer in recommender.recommend(cold_users, at, recommender.k) if cold_users else []:
        stages.update(rec.stage for rec in answer)
    unknown = recommender.recommend([UNKNOWN_USER], at, recommender.k)[0]
    known = ctx.user_ids(sample_codes(split.evaluated_users, ctx.sample, ctx.rng))
    shown = {
        rec.item for answer in recommender.recommend(known, at, recommender.k) for rec in answer
    }
    slots = sum(stages.values())
    report.measured["coverage"] = {
        "cold_users": len(cold_codes),
        "cold_user_share": round(user_share, 4),
        "cold_items": len(cold_items),
        "cold_item_share": round(item_share, 4),
        "listed_items": len(listed_codes),
        "available_items": int(listed.sum()),
        "cold_user_stage_share": {s: round(n / slots, 4) for s, n in stages.most_common()},
        "unknown_user_stages": sorted({rec.stage for rec in unknown}),
        "cold_items_shown": len(cold_items & shown),
    }
    popularity = recommender.popularity_stage
    if user_share > COLD_USER_LIMIT:
        answered = ", ".join(f"`{s}` {n / slots:.0%}" for s, n in stages.most_common())
        report.add(
            "coverage",
            "warning",
            "cold users",
            f"{len(cold_codes):,} of {active:,} users ({user_share:.0%}) appear only after the "
            "cutoff: the model never learnt them, and the evaluation could not judge them; "
            f"served from their history since, their slots come from {answered or 'nothing'} "
            f"(a user with no history at all gets `{popularity}` only, marked degraded by the "
            "service)",
            "add a popularity-in-segment fallback (popularity within the user's region or "
            "channel) and read more history (an earlier start, a longer popularity window); "
            "retrain often so new users become known",
        )
    if item_share > COLD_ITEM_LIMIT:
        report.add(
            "coverage",
            "warning",
            "cold items",
            f"{len(cold_items):,} of {len(listed_codes):,} catalog items ({item_share:.0%}) "
            f"have no training interaction: no model can recommend them "
            f"({len(cold_items & shown):,} appeared in {len(known):,} sampled lists)",
            "read more history, add a popularity stage with a short window (new items rise "
            "fast), or retrain more often so new items get interactions to learn from",
        )
