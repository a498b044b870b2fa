"""Team-draft interleaving: one list drafted from control's and the candidate's rankings.

Definition (Radlinski, Kurup and Joachims 2008, "How does clickthrough data reflect retrieval
quality?"). Two *teams*, ``control`` and ``candidate``, each hold a ranked list. Picks are
made one at a time until the list holds ``k`` items or a team has nothing left to pick:

- the team with fewer picks so far picks next; when both have picked as many, a fair coin
  decides (so each *round* of two picks starts with a coin toss for who picks first);
- a team picks the highest-ranked item of its own list that is not in the merged list yet
  (and, with an ordering, that its category still has room for: :func:`team_draft`'s
  ``max_per_category``, the same rule as :mod:`taxiway.recommend.ordering`);
- the item is shown at the next position and credited to the team that picked it.

So every item comes from one of the two lists, none twice, and in every prefix of the list
the teams' sizes differ by at most one: a user who clicks at random clicks both teams' items
equally often, whatever the two rankings are. A click is credited to the team of the item
clicked (:mod:`taxiway.rollout.statistics.interleaving` turns credits into a test).

The coin is seeded by the request id (:func:`coin_for`), so the same request merges the same
two lists into the same list in any process (a replay, a test).

>>> from taxiway.recommend.pipeline import Recommendation as R
>>> control = [R("a", .9, "pop"), R("b", .8, "pop"), R("c", .7, "pop")]
>>> candidate = [R("b", .5, "als"), R("d", .4, "als"), R("a", .3, "als")]
>>> [(r.item, team) for r, team in team_draft(control, candidate, 3, "req-1")]
[('b', 'candidate'), ('a', 'control'), ('c', 'control')]
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from hashlib import blake2b
from typing import TYPE_CHECKING, Literal

from taxiway.recommend.pipeline import Recommendation, Recommender
from taxiway.recommend.split import to_micros

if TYPE_CHECKING:
    from taxiway.serving.recommend_arms import RecommendArms, Served
    from taxiway.serving.recommend_service import RecommendAnswer, RecommendRequest

__all__ = ["ARM", "TEAMS", "Team", "coin_for", "interleaved_answer", "team_draft"]

Team = Literal["control", "candidate"]
TEAMS: tuple[Team, Team] = ("control", "candidate")
ARM = "interleaved"
"""The ``arm`` of an interleaved answer (each item names its ``team``)."""

ArmAnswer = Callable[
    ["RecommendRequest", float, "tuple[str, Served]"], Awaitable["RecommendAnswer"]
]
"""The service's answer from one given arm: ``(request, started, (arm, served))``."""


def coin_for(request_id: str) -> random.Random:
    """The fair coin of one request: seeded by a hash of its id, identical in every process.

    >>> coin_for("r-1").random() == coin_for("r-1").random()
    True
    """
    digest = blake2b(request_id.encode(), digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))  # nosec B311


def team_draft(
    control: Sequence[Recommendation],
    candidate: Sequence[Recommendation],
    k: int,
    request_id: str,
    *,
    category: Callable[[str], int] | None = None,
    max_per_category: int | None = None,
) -> list[tuple[Recommendation, Team]]:
    """The team-draft merge of ``control`` and ``candidate`` (best first) into at most ``k``
    items, each with the team that picked it (see the module). With ``max_per_category``,
    no category (``category(item)``; ``-1``: none, never limited) gets more than that many
    items: a team skips the items whose category is full, as the ordering would.

    >>> from taxiway.recommend.pipeline import Recommendation as R
    >>> same = [R("a", 1, "s"), R("b", 1, "s")]
    >>> sorted(team for _, team in team_draft(same, same, 2, "r"))
    ['candidate', 'control']
    """
    coin = coin_for(request_id)
    lists: dict[Team, Sequence[Recommendation]] = {"control": control, "candidate": candidate}
    cursor: dict[Team, int] = {"control": 0, "candidate": 0}
    picked: dict[Team, int] = {"control": 0, "candidate": 0}
    taken: set[str] = set()
    per_category: Counter[int] = Counter()
    merged: list[tuple[Recommendation, Team]] = []

    def group(item: str) -> int:
        return -1 if category is None or max_per_category is None else category(item)

    def best_left(team: Team) -> Recommendation | None:
        ranked, at = lists[team], cursor[team]
        # an item skipped stays skipped: taken items stay taken, full categories stay full
        while at < len(ranked):
            item = ranked[at].item
            kind = group(item)
            full = kind >= 0 and max_per_category is not None
            if item not in taken and not (full and per_category[kind] >= (max_per_category or 0)):
                break
            at += 1
        cursor[team] = at
        return ranked[at] if at < len(ranked) else None

    while len(merged) < k:
        offers = {team: best_left(team) for team in TEAMS}
        if offers["control"] is None or offers["candidate"] is None:
            break
        if picked["control"] != picked["candidate"]:
            team: Team = "control" if picked["control"] < picked["candidate"] else "candidate"
        else:
            team = "candidate" if coin.random() < 0.5 else "control"
        chosen = offers[team]
        assert chosen is not None  # nosec B101
        merged.append((chosen, team))
        taken.add(chosen.item)
        per_category[group(chosen.item)] += 1
        picked[team] += 1
    return merged


async def interleaved_answer(
    answer: ArmAnswer,
    request: RecommendRequest,
    arms: RecommendArms,
    started: float,
    at: datetime,
) -> RecommendAnswer:
    """The interleaved answer for ``request``: both arms answer it (each through its own
    fallback chain, concurrently, within the same budget), their lists are merged by
    :func:`team_draft` under the candidate's ordering (the tighter limit when control's has
    one too), and the answer's ``arm`` is ``interleaved``, each item naming its ``team``.

    The answer is ``degraded`` when either arm's was (its ``path`` the first non-model one,
    the candidate's first), names the candidate's model version, and keeps control's
    request id (the two arms' answers are never sent or logged)."""
    control, candidate = await asyncio.gather(
        answer(request, started, ("control", arms.control)),
        answer(request, started, ("candidate", arms.candidate)),
    )
    recommender = arms.candidate.recommender
    limits = [
        limit
        for limit in (recommender.max_per_category, arms.control.recommender.max_per_category)
        if limit is not None
    ]
    category = _categories(recommender, at) if limits else None
    merged = team_draft(
        control.items,
        candidate.items,
        request.k,
        control.request_id,
        category=category,
        max_per_category=min(limits) if limits else None,
    )
    degraded = [a for a in (candidate, control) if a.path != "model"]
    reasons = [f"{a.arm}: {a.reason}" for a in (candidate, control) if a.reason]
    result = dataclasses.replace(
        control,
        items=[item for item, _ in merged],
        model_version=candidate.model_version,
        degraded=bool(degraded),
        path=degraded[0].path if degraded else "model",
        reason="; ".join(reasons) or None,
        latency_ms=(time.perf_counter() - started) * 1000,
        arm=ARM,
        unknown_user=control.unknown_user and candidate.unknown_user,
    )
    for shown, (_, team) in zip(result.shown, merged, strict=True):
        shown["team"] = team
    return result


def _categories(recommender: Recommender, at: datetime) -> Callable[[str], int]:
    """Each item's category code in ``recommender``'s catalog as of ``at`` (-1: none)."""
    codes = recommender.catalog.as_of(to_micros(at)).category

    def category(item: str) -> int:
        found = recommender.item_codes([item])
        return int(codes[found[0]]) if found else -1

    return category
