"""Team-draft interleaving: every item comes from one of the two lists, none twice; in every
prefix the teams' sizes differ by at most one; each team picks its best item left; the
ordering (at most N per category) holds; the same request id gives the same list; and a user
who clicks at random credits both teams alike."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.recommend.pipeline import Recommendation
from taxiway.serving.interleave import TEAMS, coin_for, team_draft

ITEMS = [f"i{n}" for n in range(30)]


def _ranked(draw: st.DrawFn, stage: str) -> list[Recommendation]:
    items = draw(st.lists(st.sampled_from(ITEMS), unique=True, max_size=15))
    return [Recommendation(item, float(-n), stage) for n, item in enumerate(items)]


@st.composite
def cases(
    draw: st.DrawFn,
) -> tuple[list[Recommendation], list[Recommendation], int, str, dict[str, int], int | None]:
    control = _ranked(draw, "pop")
    candidate = _ranked(draw, "ease")
    k = draw(st.integers(1, 20))
    request_id = draw(st.text(min_size=1, max_size=12))
    categories = {item: draw(st.integers(-1, 3)) for item in ITEMS}
    limit = draw(st.one_of(st.none(), st.integers(1, 4)))
    return control, candidate, k, request_id, categories, limit


@settings(max_examples=300, deadline=None)
@given(cases())
def test_the_merge_keeps_every_promise_of_team_draft(
    case: tuple[list[Recommendation], list[Recommendation], int, str, dict[str, int], int | None],
) -> None:
    control, candidate, k, request_id, categories, limit = case
    lists = {"control": control, "candidate": candidate}
    merged = team_draft(
        control, candidate, k, request_id, category=categories.__getitem__, max_per_category=limit
    )
    items = [r.item for r, _ in merged]
    # at most k, no duplicates, each item from the list of the team credited with it
    assert len(items) <= k
    assert len(items) == len(set(items))
    for recommendation, team in merged:
        assert recommendation in lists[team]
    # in every prefix the teams' sizes differ by at most one
    sizes: Counter[str] = Counter()
    for _, team in merged:
        sizes[team] += 1
        assert abs(sizes["control"] - sizes["candidate"]) <= 1
    # the ordering: no category (other than -1, none) holds more than the limit
    if limit is not None:
        per = Counter(categories[item] for item in items if categories[item] >= 0)
        assert all(count <= limit for count in per.values())
    # a team picks its highest-ranked item not yet shown (and whose category has room)
    for position, (recommendation, team) in enumerate(merged):
        before = items[:position]
        kept = Counter(categories[i] for i in before)
        ranked = [r.item for r in lists[team]]
        for better in ranked[: ranked.index(recommendation.item)]:
            full = (
                limit is not None and categories[better] >= 0 and kept[categories[better]] >= limit
            )
            assert better in before or full
    # it stops only at k or when a team has nothing left to pick
    if len(items) < k:
        shown = set(items)
        per = Counter(categories[i] for i in items)

        def left(team: str) -> bool:
            return any(
                r.item not in shown
                and (limit is None or categories[r.item] < 0 or per[categories[r.item]] < limit)
                for r in lists[team]
            )

        assert not (left("control") and left("candidate"))
    # the same request id merges the same lists into the same list
    again = team_draft(
        control, candidate, k, request_id, category=categories.__getitem__, max_per_category=limit
    )
    assert again == merged


def test_two_full_lists_always_give_k_items() -> None:
    rng = random.Random(5)
    for n in range(200):
        control = [Recommendation(i, 0.0, "a") for i in rng.sample(ITEMS, 10)]
        candidate = [Recommendation(i, 0.0, "b") for i in rng.sample(ITEMS, 10)]
        assert len(team_draft(control, candidate, 10, f"r{n}")) == 10


def test_the_coin_is_fair_and_a_random_clicker_credits_both_teams_alike() -> None:
    """Over many requests the first pick goes to each team about half the time, and a user who
    clicks one position at random clicks each team's item about half the time, even when the
    two rankings are identical."""
    same = [Recommendation(i, 0.0, "a") for i in ITEMS[:10]]
    other = [Recommendation(i, 0.0, "b") for i in reversed(ITEMS[:10])]
    rng = random.Random(11)
    for control, candidate in ((same, same), (same, other)):
        first: Counter[str] = Counter()
        clicked: Counter[str] = Counter()
        for n in range(4000):
            merged = team_draft(control, candidate, 10, f"request-{n}")
            first[merged[0][1]] += 1
            clicked[merged[rng.randrange(len(merged))][1]] += 1
        for counts in (first, clicked):
            assert abs(counts["candidate"] / 4000 - 0.5) < 0.03, counts
        assert set(first) == set(TEAMS)


def test_the_coin_depends_only_on_the_request_id() -> None:
    assert [coin_for("abc").random() for _ in range(3)] == [coin_for("abc").random()] * 3
    assert coin_for("abc").random() != coin_for("abd").random()
