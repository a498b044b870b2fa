"""Synthetic interactions with taste structure, seeded: a model that learns tastes beats
popularity by a real margin, and popularity is still a fair baseline (items' popularity is
Zipf-like across the whole catalog).

The world: items fall into ``tastes`` groups; each user likes one or two groups; each
interaction picks, with probability ``focus``, an item of a liked group (by popularity within
the group), else any item (by global popularity). Times are uniform over ``days`` days from
``START``, so a global time split evaluates the same tastes later on.

>>> data = interactions(users=20, items=15, per_user=5, seed=1)
>>> (data.n_users, data.n_items, len(data))
(20, 15, 100)
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from taxiway.recommend.interactions import Interactions

__all__ = ["START", "categories", "interactions", "split", "table"]

START = datetime(2025, 1, 1, tzinfo=UTC)


def table(
    *,
    users: int = 300,
    items: int = 200,
    per_user: int = 30,
    tastes: int = 10,
    focus: float = 0.8,
    days: int = 100,
    seed: int = 0,
) -> pa.Table:
    """Columns user (int), item (str ``i<code>``), at (timestamp UTC), weight, event."""
    rng = np.random.default_rng(seed)
    taste_of_item = rng.integers(0, tastes, size=items)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity = popularity[rng.permutation(items)]
    liked = rng.integers(0, tastes, size=(users, 2))
    one_taste = rng.random(users) < 0.5
    liked[one_taste, 1] = liked[one_taste, 0]
    rows = users * per_user
    user = np.repeat(np.arange(users), per_user)
    focused = rng.random(rows) < focus
    chosen_taste = liked[user, rng.integers(0, 2, size=rows)]
    item = np.empty(rows, dtype=np.int64)
    global_p = popularity / popularity.sum()
    item[~focused] = rng.choice(items, size=int((~focused).sum()), p=global_p)
    for taste in range(tastes):
        members = np.flatnonzero(taste_of_item == taste)
        picks = focused & (chosen_taste == taste)
        if members.size == 0:
            item[picks] = rng.choice(items, size=int(picks.sum()), p=global_p)
            continue
        p = popularity[members] / popularity[members].sum()
        item[picks] = rng.choice(members, size=int(picks.sum()), p=p)
    at_us = (START.timestamp() * 1e6 + rng.random(rows) * days * 86_400e6).astype(np.int64)
    return pa.table(
        {
            "user": pa.array(user, pa.int64()),
            "item": pa.array([f"i{code}" for code in item], pa.string()),
            "at": pa.array(at_us, pa.timestamp("us", tz="UTC")),
            "weight": pa.array(rng.integers(1, 4, size=rows).astype(np.float64)),
            "event": pa.array(np.where(rng.random(rows) < 0.3, "purchase", "view")),
        }
    )


def categories(data: Interactions, *, tastes: int = 10, seed: int = 0) -> NDArray[np.int32]:
    """The category of each item code of ``data`` (made by :func:`interactions` with this
    ``tastes`` and ``seed``): the item's taste group (:func:`table`'s first draw), so a catalog
    category that carries taste.

    >>> data = interactions(users=20, items=6, tastes=3, per_user=5, seed=1)
    >>> data.items.tolist(), categories(data, tastes=3, seed=1).tolist()
    (['i0', 'i1', 'i2', 'i3', 'i4', 'i5'], [1, 1, 2, 2, 0, 0])
    """
    rng = np.random.default_rng(seed)
    taste_of_item = rng.integers(0, tastes, size=len(data.items))
    return np.array([taste_of_item[int(str(i)[1:])] for i in data.items], dtype=np.int32)


def interactions(*, items: int = 200, **world: int | float) -> Interactions:
    """:func:`table` coded, the catalog being every item ``i0..i<items-1>``."""
    return Interactions.from_arrow(
        table(items=items, **world),  # type: ignore[arg-type]
        user="user",
        item="item",
        at="at",
        weight="weight",
        event="event",
        items=[f"i{code}" for code in range(items)],
    )


def split(data: Interactions, fraction: float = 0.8) -> tuple[Interactions, Interactions, int]:
    """Train (before the cutoff), test (at or after it) and the cutoff in µs: the time at
    ``fraction`` of the range, as the recommend spec's default split does with 0.9."""
    low, high = int(data.at.min()), int(data.at.max())
    cutoff = low + int((high - low) * fraction)
    return data.before(cutoff), data.where(data.at >= cutoff), cutoff
