"""Filters: no already-seen, unavailable or denied item is ever returned, whatever the stage."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.recommend.pipeline_world import EVENTS, catalog, interactions, recommender

from taxiway.recommend.filters import (
    AlreadySeen,
    Deny,
    ExclusionFilter,
    Unavailable,
    filter_from_json,
)
from taxiway.recommend.split import from_micros

N_USERS, N_ITEMS = 5, 9


@st.composite
def _world(draw: st.DrawFn) -> dict[str, object]:
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, N_USERS - 1),
                st.integers(0, N_ITEMS - 1),
                st.integers(0, 1_000),
                st.integers(0, len(EVENTS) - 1),
            ),
            min_size=1,
            max_size=40,
        )
    )
    shelf = draw(
        st.lists(
            st.tuples(
                st.integers(0, N_ITEMS - 1),
                st.integers(0, 1_000),
                st.booleans(),
                st.integers(0, 2),
            ),
            max_size=25,
        )
    )
    lookback = draw(st.one_of(st.none(), st.integers(1, 1_000)))
    events = draw(st.one_of(st.none(), st.sampled_from([("purchase",), ("view",), EVENTS])))
    denied = draw(st.sets(st.integers(0, N_ITEMS - 1), max_size=N_ITEMS))
    kinds = draw(st.sampled_from([("itemknn",), ("popularity",), ("itemknn", "popularity")]))
    return {
        "rows": rows,
        "shelf": shelf,
        "lookback": lookback,
        "events": events,
        "denied": denied,
        "kinds": kinds,
        "at": draw(st.integers(0, 1_100)),
        "cutoff": draw(st.integers(0, 1_100)),
        "k": draw(st.integers(1, N_ITEMS + 2)),
        "per_category": draw(st.one_of(st.none(), st.integers(1, 3))),
        "recent": [
            draw(st.lists(st.integers(0, N_ITEMS - 1), max_size=3)) for _ in range(N_USERS + 1)
        ],
        "unavailable": draw(st.booleans()),
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_world())
def test_no_filtered_item_is_ever_returned(world: dict[str, object]) -> None:
    rows = world["rows"]
    assert isinstance(rows, list)
    every = interactions(rows, N_USERS, N_ITEMS)
    cutoff = int(world["cutoff"])  # type: ignore[call-overload]
    train = every.before(cutoff)
    if not len(train):
        train = every
    shelf_rows = world["shelf"]
    assert isinstance(shelf_rows, list)
    events = world["events"]
    lookback = world["lookback"]
    denied = sorted(world["denied"])  # type: ignore[call-overload]
    filters: list[ExclusionFilter] = [
        AlreadySeen(lookback_us=lookback, event_types=events),  # type: ignore[arg-type]
        Deny(items=np.array(denied, dtype=np.int32)),
    ]
    if world["unavailable"]:
        filters.append(Unavailable())
    model = recommender(
        train,
        every,
        catalog(shelf_rows, N_ITEMS),
        filters,
        kinds=world["kinds"],  # type: ignore[arg-type]
        k=int(world["k"]),  # type: ignore[call-overload]
        max_per_category=world["per_category"],  # type: ignore[arg-type]
    )
    at = int(world["at"])  # type: ignore[call-overload]
    users = [f"u{u}" for u in range(N_USERS)] + ["stranger"]
    recent_codes: list[list[int]] = world["recent"]  # type: ignore[assignment]
    recent = [[f"i{i:02d}" for i in items] for items in recent_codes]
    lists = model.recommend(users, from_micros(at), recent=recent)
    for row, (user, answer) in enumerate(zip(users, lists, strict=True)):
        shown = [int(r.item[1:]) for r in answer]
        assert len(shown) == len(set(shown)) <= int(world["k"])  # type: ignore[call-overload]
        # already seen, by brute force over the rows and the request's recent items
        seen = {
            i
            for u, i, t, e in rows
            if f"u{u}" == user
            and t < at
            and (lookback is None or t >= at - lookback)
            and (events is None or EVENTS[e] in events)  # type: ignore[operator]
        }
        if events is None:
            seen |= set(recent_codes[row])
        assert not seen & set(shown), (user, seen, shown)
        assert not set(denied) & set(shown)
        if world["unavailable"]:
            newest: dict[int, tuple[int, bool]] = {}
            for item, t, available, _ in shelf_rows:
                if t <= at and (item not in newest or t >= newest[item][0]):
                    newest[item] = (t, available)
            offered = {item for item, (_, available) in newest.items() if available}
            assert set(shown) <= offered, (shown, offered)
        if world["per_category"] is not None:
            state = model.catalog.as_of(at)
            groups = [int(state.category[i]) for i in shown if state.category[i] >= 0]
            assert all(groups.count(g) <= world["per_category"] for g in groups)  # type: ignore[operator]


def test_when_every_candidate_is_filtered_the_list_is_empty_not_wrong() -> None:
    every = interactions([(0, 0, 1, 0), (1, 1, 2, 0), (1, 2, 3, 0)], 2, 3)
    shelf = catalog(None, 3)
    model = recommender(
        every, every, shelf, [AlreadySeen(), Deny(items=np.array([0, 1, 2], np.int32))]
    )
    assert model.recommend(["u0", "u1"], from_micros(10)) == [[], []]


def test_unavailable_follows_the_catalog_history() -> None:
    every = interactions([(0, 0, 1, 0), (1, 1, 2, 0), (1, 0, 3, 0), (0, 2, 3, 0)], 2, 3)
    # item 0 goes out of stock at t=50 and comes back at t=80
    shelf = catalog(
        [(0, 0, True, 0), (0, 50, False, 0), (0, 80, True, 0), (1, 0, True, 0), (2, 0, True, 0)], 3
    )
    model = recommender(every, every, shelf, [Unavailable()], kinds=("popularity",), k=3)

    def items(t: int) -> set[str]:
        return {r.item for r in model.recommend(["u9"], from_micros(t))[0]}

    assert "i00" in items(49)
    assert "i00" not in items(50)
    assert "i00" in items(80)


def test_filters_round_trip_through_json_by_item_id() -> None:
    ids = np.array(["a", "b", "c"], dtype=object)
    seen = AlreadySeen(
        lookback_us=int(timedelta(days=90) / timedelta(microseconds=1)), event_types=("purchase",)
    )
    back = filter_from_json(seen.to_json(ids), ids)
    assert back == seen
    deny = filter_from_json(Deny(items=np.array([2, 0], np.int32)).to_json(ids), ids)
    assert isinstance(deny, Deny)
    assert deny.items.tolist() == [0, 2]
    # a denied id the new vocabulary lacks is dropped, never mapped to another item
    assert filter_from_json({"kind": "deny", "items": ["zz", "b"]}, ids).items.tolist() == [1]  # type: ignore[attr-defined]
