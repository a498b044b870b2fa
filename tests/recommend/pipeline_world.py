"""Small hand-built worlds for the pipeline's tests: interactions, a catalog, a Recommender."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from taxiway.recommend.catalog import Catalog
from taxiway.recommend.filters import ExclusionFilter
from taxiway.recommend.generators import Generator
from taxiway.recommend.generators.itemknn import ItemKnn
from taxiway.recommend.generators.popularity import Popularity
from taxiway.recommend.history import Histories
from taxiway.recommend.interactions import Interactions
from taxiway.recommend.pipeline import Recommender

EVENTS = ("purchase", "view")


def interactions(
    rows: Sequence[tuple[int, int, int, int]], n_users: int, n_items: int
) -> Interactions:
    """(user, item, at µs, event code) rows as Interactions with ids u<code> and i<code>."""
    if rows:
        user, item, at, event = (np.array(c) for c in zip(*rows, strict=True))
    else:
        user = item = at = event = np.zeros(0, dtype=np.int64)
    return Interactions(
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        at=at.astype(np.int64),
        weight=np.ones(len(rows), np.float32),
        event=event.astype(np.int8),
        users=np.array([f"u{i}" for i in range(n_users)], dtype=object),
        items=np.array([f"i{i:02d}" for i in range(n_items)], dtype=object),
        events=EVENTS,
    )


def catalog(rows: Sequence[tuple[int, int, bool, int]] | None, n_items: int) -> Catalog:
    """(item, at µs, available, category code) rows; categories c0, c1, ...; None: every item
    listed and available since always."""
    if rows is None:
        return Catalog.listing(n_items)
    item, at, available, category = (
        np.array(c) for c in (zip(*rows, strict=True) if rows else ([], [], [], []))
    )
    return Catalog(
        item=item.astype(np.int32),
        at=at.astype(np.int64),
        available=available.astype(bool),
        category=category.astype(np.int32),
        categories=tuple(f"c{i}" for i in range(int(category.max(initial=-1)) + 1)),
        n_items=n_items,
    )


def recommender(
    train: Interactions,
    every: Interactions,
    shelf: Catalog,
    filters: Sequence[ExclusionFilter],
    *,
    kinds: Sequence[str] = ("itemknn",),
    k: int = 3,
    max_per_category: int | None = None,
) -> Recommender:
    """Generators fitted on ``train``, histories from ``every``, popularity last."""
    made: dict[str, Generator] = {
        "itemknn": ItemKnn(k=10, neighbours=5),
        "popularity": Popularity(k=10),
    }
    stages = [(kind, made[kind]) for kind in kinds]
    if "popularity" not in kinds:
        stages.append(("popularity", made["popularity"]))
    with threadpool_limits(1, "blas"):
        for _, generator in stages:
            generator.fit(train)
    return Recommender(
        stages,
        filters=filters,
        catalog=shelf,
        histories=Histories.of(every),
        items=every.items,
        users=every.users,
        events=every.events,
        k=k,
        popularity_stage="popularity",
        max_per_category=max_per_category,
    )
