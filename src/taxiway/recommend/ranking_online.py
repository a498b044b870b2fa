"""The ranking stage's feature views at serving: read from the online store at the request time.

Training reads the views of ``recommend.ranking.features`` point in time, offline
(:mod:`~taxiway.recommend.ranking_features`); the service reads the same views from the online
store, as ``taxiway features materialize``, streams and tiles keep it, judged at the request
time by :func:`taxiway.features.lookup.lookup` (a latest value older than its ``ttl`` is
stale, a tiled view is computed from its tiles over the windows ending then). One definition:

- the same views, the same columns, in the same order: the spec's views are checked against
  the ranker's layout when the store is attached (a view changed since training is refused
  with the fix: train again);
- the same numbers: a value becomes a float32 as the offline path makes it (booleans 0/1,
  times as epoch seconds, null as NaN);
- one read per entity and request: the request's users in one round trip, every candidate
  item (up to k x the number of generators) in one more, never one read per candidate.

A value the store does not have (a key never materialized, a view missing for it) or has
stale is NaN, LightGBM's missing value (training met missing values too), and it is counted
per view and status (:meth:`OnlineRankingFeatures.take_misses`; the service adds them to
``taxiway_missing_features``): never an error. A store that fails to answer raises
:class:`~taxiway.errors.FeatureError`, so the service's fallback answers, marked degraded.

The popularity column (``item_interactions``) is no feature view: it comes from the interactions
the recommender holds, as of the time (the ranker's snapshot), as before. A user unknown at
training has missing user values, online as offline (the candidates carry codes, not ids).

>>> import numpy as np
>>> [_number(v) for v in (None, True, 3, 2.5, "2025-01-01T00:00:01+00:00", "x")][:5]
[nan, 1.0, 3.0, 2.5, 1735689601.0]
>>> bool(np.isnan(_number("not a time")))
True
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from taxiway.errors import FeatureError, ModelError, TaxiwayError
from taxiway.features.definitions import view_columns
from taxiway.features.lookup import lookup
from taxiway.features.online.base import OnlineStore
from taxiway.recommend.ranking import FeatureLayout, Ranker
from taxiway.recommend.ranking_features import (
    POPULARITY_COLUMNS,
    FeatureSnapshot,
    ViewSides,
    view_sides,
)
from taxiway.spec.models import TaxiwaySpec
from taxiway.spec.project import Project

__all__ = ["OnlineRankingFeatures", "OnlineValues", "attach_online_features"]

logger = logging.getLogger("taxiway.serving")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class _Entity:
    """The views of one side read from one entity, and where their columns go."""

    entity: str
    views: tuple[str, ...]
    columns: tuple[str, ...]
    positions: tuple[int, ...]
    """Each column's place in the side's matrix (the ranker's order)."""


class OnlineRankingFeatures:
    """The ranker's feature views from ``store``, at any request time (:meth:`at`)."""

    def __init__(
        self, spec: TaxiwaySpec, store: OnlineStore, sides: ViewSides, layout: FeatureLayout
    ) -> None:
        self.spec = spec
        self.store = store
        self.layout = layout
        self.users = _entities(spec, sides.user, 0)
        popularity = len(POPULARITY_COLUMNS)
        self.items = _entities(spec, sides.item, popularity)
        user_columns = _in_order(self.users)
        item_columns = POPULARITY_COLUMNS + _in_order(self.items)[popularity:]
        if (user_columns, item_columns) != (layout.user_columns, layout.item_columns):
            raise ModelError(
                f"the ranker was trained on user columns {list(layout.user_columns)} and item "
                f"columns {list(layout.item_columns)}, the spec's recommend.ranking.features "
                f"now give {list(user_columns)} and {list(item_columns)}",
                fix="train the recommender again (`taxiway train`) so the ranker reads the "
                "views the spec names",
            )
        self._lock = threading.Lock()
        self._misses: Counter[tuple[str, str]] = Counter()
        self._warned: set[str] = set()

    def at(
        self,
        at_us: int,
        snapshot: FeatureSnapshot | None,
        users: NDArray[np.object_],
        items: NDArray[np.object_],
    ) -> OnlineValues:
        """The values at ``at_us`` for the recommender's ``users`` and ``items`` (ids by
        code), read when the candidates ask (:class:`OnlineValues`)."""
        return OnlineValues(self, at_us, snapshot, users, items)

    def take_misses(self) -> dict[tuple[str, str], int]:
        """``(view, status)`` → how many keys were read without the view's values (status
        ``missing`` or ``stale``) since the last call."""
        with self._lock:
            taken = dict(self._misses)
            self._misses.clear()
        return taken

    def read(
        self, groups: Sequence[_Entity], ids: list[str], width: int, at: datetime
    ) -> NDArray[np.float32]:
        """len(ids) x ``width`` values of ``groups``' views for ``ids``, NaN where the store
        has none: one store read per entity."""
        out = np.full((len(ids), width), np.nan, dtype=np.float32)
        if not ids:
            return out
        misses: Counter[tuple[str, str]] = Counter()
        for group in groups:
            try:
                found = lookup(self.spec, self.store, group.entity, ids, now=at)
            except TaxiwayError:
                raise
            except Exception as error:  # the store's own failure: the service falls back
                raise FeatureError(
                    f"the online store could not be read for the ranking's `{group.entity}` "
                    f"features: {type(error).__name__}: {error}",
                    fix="check the online store is up (`taxiway features get`); the service "
                    "answers from its fallbacks meanwhile",
                ) from error
            wanted = set(group.views)
            for row, features in enumerate(found):
                values = features.features
                short: set[tuple[str, str]] = set()
                for index, name in enumerate(group.columns):
                    value = values.get(name)
                    if value is None or value.status != "present":
                        status = "missing" if value is None else value.status
                        short.add((name.split("__", 1)[0], status))
                        continue
                    out[row, group.positions[index]] = _number(value.value)
                misses.update(pair for pair in short if pair[0] in wanted)
        if misses:
            with self._lock:
                self._misses.update(misses)
                new = {view for view, _ in misses} - self._warned
                self._warned |= new
            for view in sorted(new):
                logger.warning(
                    "the online store has no value of ranking feature view `%s` for some keys: "
                    "the ranker reads NaN (counted in taxiway_missing_features); run "
                    "`taxiway features materialize`",
                    view,
                )
        return out


class OnlineValues:
    """The online values at one time (:class:`~taxiway.recommend.ranking_features.
    RankingValues`): each call reads the store once per entity for the codes asked."""

    def __init__(
        self,
        source: OnlineRankingFeatures,
        at_us: int,
        snapshot: FeatureSnapshot | None,
        users: NDArray[np.object_],
        items: NDArray[np.object_],
    ) -> None:
        self.source = source
        self.at = _EPOCH + at_us * _MICROSECOND
        self.snapshot = snapshot
        self.users = users
        self.items = items
        self.user_columns = source.layout.user_columns
        self.item_columns = source.layout.item_columns

    def for_users(self, codes: NDArray[np.int32]) -> NDArray[np.float32]:
        """Each user code's row, read from the store (one read per distinct code set)."""
        unique, back = np.unique(codes, return_inverse=True)
        ids = [str(self.users[c]) for c in unique.tolist()]
        width = len(self.user_columns)
        return self.source.read(self.source.users, ids, width, self.at)[back.reshape(-1)]

    def for_items(self, codes: NDArray[np.int32]) -> NDArray[np.float32]:
        """Each item code's row: its popularity from the snapshot, its views from the store
        (every distinct item in one read)."""
        unique, back = np.unique(codes, return_inverse=True)
        ids = [str(self.items[c]) for c in unique.tolist()]
        out = self.source.read(self.source.items, ids, len(self.item_columns), self.at)
        popularity = len(POPULARITY_COLUMNS)
        if self.snapshot is not None:
            out[:, :popularity] = self.snapshot.item_values[unique, :popularity]
        return out[back.reshape(-1)]


def attach_online_features(project: Project, ranker: Ranker | None, store: OnlineStore) -> bool:
    """Serve ``ranker``'s feature views from ``store`` (True), when the spec's
    ``recommend.ranking`` names any (else False: nothing to read, the ranker keeps its
    snapshot for the popularity column)."""
    recommend = project.spec.recommend
    if ranker is None or recommend is None or recommend.ranking is None:
        return False
    sides = view_sides(project, recommend)
    if not sides.user and not sides.item:
        return False
    ranker.online = OnlineRankingFeatures(project.spec, store, sides, ranker.layout)
    return True


def _entities(spec: TaxiwaySpec, views: Sequence[str], offset: int) -> tuple[_Entity, ...]:
    """``views`` grouped by entity (one store read each), each column keeping its place in
    the ranker's order: the views' columns one after another from ``offset``."""
    groups: dict[str, _Entity] = {}
    for name in views:
        view = spec.features[name]
        columns = tuple(c.name for c in view_columns(name, view))
        places = tuple(range(offset, offset + len(columns)))
        offset += len(columns)
        last = groups.get(view.entity)
        groups[view.entity] = (
            _Entity(view.entity, (name,), columns, places)
            if last is None
            else _Entity(
                last.entity, (*last.views, name), last.columns + columns, last.positions + places
            )
        )
    return tuple(groups.values())


def _in_order(groups: Sequence[_Entity]) -> tuple[str, ...]:
    """The groups' columns in the ranker's order (by their positions, from 0)."""
    placed = {p: c for g in groups for c, p in zip(g.columns, g.positions, strict=True)}
    width = max(placed, default=-1) + 1
    return tuple(placed.get(p, "") for p in range(width))


def _number(value: Any) -> float:
    """A stored value as the offline path makes it a number (``ranking_features._numbers``):
    booleans 0/1, numbers as they are, times (stored as ISO text) as epoch seconds, anything
    else (null, text that is no time) NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return math.nan
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return ((moment - _EPOCH) // _MICROSECOND) / 1e6
    return math.nan
