"""Online lookups: feature vectors with each value's status and age, in one store round trip.

A value is ``present``, ``missing`` (never materialized for this key, or no known row) or
``stale`` (a latest-value older than its view's ``ttl`` at lookup time: returned as null, as
the training set would have it, never as if it were fresh). Status and age are judged once
per view and key: a latest value by its event time (age = now - event time, stale past the
ttl), any other view by when it was computed (age = now - as_of); ages are in seconds,
rounded to the millisecond.

Tiled views (``tiles:``, :mod:`taxiway.features.tiles`) are computed at lookup time from the
store's tiles over the windows ending at ``now``, so they stay right as time passes without a
new materialization: present (age 0) when the key has tiles in range or a stored vector (its
windows may then be empty: counts 0), missing otherwise. A store without tiles (a caller's
own read, e.g. the service's asynchronous Redis read handed in as a store) serves the
materialized snapshot instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, cast

from taxiway.features.definitions import view_columns
from taxiway.features.online._codec import Records
from taxiway.features.online.base import OnlineStore, ViewValues
from taxiway.features.tiles import TiledView, read_tiled, tiled_views, window_values
from taxiway.spec.models import LatestView, TaxiwaySpec

__all__ = ["EntityFeatures", "FeatureValue", "lookup", "lookup_values", "values_of"]

Status = Literal["present", "missing", "stale"]


class FeatureValue(NamedTuple):
    """One served value.

    A named tuple (immutable, like the frozen dataclass it replaced): a lookup of 100 keys of
    25 features builds 2,500 of them, and a tuple is built in a third of the time.
    """

    value: Any
    status: Status
    age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"value": self.value, "status": self.status, "age_s": self.age_s}


class EntityFeatures:
    """Every feature of one entity key, judged at ``as_of``.

    A lookup judges each view once (its status and age) and keeps the view's stored values
    as they were read: ``features``, one :class:`FeatureValue` per feature, is built on first
    access (a lookup of 100 keys of 25 features would otherwise build 2,500 tuples that a
    caller wanting only :meth:`values`, or only some features, never reads).
    """

    __slots__ = ("_columns", "_features", "as_of", "entity", "key")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value (as the dataclass was)

    def __init__(
        self,
        entity: str,
        key: str,
        as_of: datetime,
        features: dict[str, FeatureValue] | None = None,
    ) -> None:
        self.entity = entity
        self.key = key
        self.as_of = as_of
        self._features: dict[str, FeatureValue] | None = {} if features is None else features
        # what a lookup judged, per view: (view, its stored values, status, age); built
        # into ``features`` on first access
        self._columns: list[_Judged] | None = None

    @classmethod
    def _judged(
        cls, entity: str, key: str, as_of: datetime, columns: list[_Judged]
    ) -> EntityFeatures:
        result = cls.__new__(cls)
        result.entity, result.key, result.as_of = entity, key, as_of
        result._features, result._columns = None, columns
        return result

    @property
    def features(self) -> dict[str, FeatureValue]:
        """Feature name → its value, status and age, in the spec's order."""
        features = self._features
        if features is None:
            features = self._features = _features(self._columns or [])
            self._columns = None
        return features

    @features.setter
    def features(self, features: dict[str, FeatureValue]) -> None:
        self._features, self._columns = features, None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntityFeatures):
            return NotImplemented
        return (self.entity, self.key, self.as_of, self.features) == (
            other.entity,
            other.key,
            other.as_of,
            other.features,
        )

    def __repr__(self) -> str:
        return (
            f"EntityFeatures(entity={self.entity!r}, key={self.key!r}, as_of={self.as_of!r}, "
            f"features={self.features!r})"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the `taxiway features get` output)."""
        return {
            "entity": {self.entity: self.key},
            "as_of": self.as_of.isoformat(),
            "features": {name: value.as_dict() for name, value in self.features.items()},
        }

    def values(self) -> dict[str, Any]:
        """Feature name → value (null when missing or stale), for scoring."""
        columns = self._columns
        if columns is None:
            return {name: value.value for name, value in self.features.items()}
        values: dict[str, Any] = {}
        for view, stored, status, _ in columns:
            if status == "present":
                for name in view.names:
                    values[name] = stored.get(name)
            else:
                values.update(view.nulls)
        return values


# One view of one key as a lookup judged it: (the view, its stored values (empty unless
# present), status, age in seconds). A plain tuple: a lookup of 100 keys builds 500.
_Judged = tuple["_View", dict[str, Any], Status, float | None]


def _features(columns: list[_Judged]) -> dict[str, FeatureValue]:
    """The :class:`FeatureValue` of every feature of judged views, in the views' order."""
    new = _new
    features: dict[str, FeatureValue] = {}
    for view, stored, status, age in columns:
        if status == "present":
            for name in view.names:
                value = stored.get(name, _ABSENT)
                features[name] = (
                    _MISSING  # a feature the store does not have (added since the last materialize)
                    if value is _ABSENT
                    else new(FeatureValue, (value, "present", age))
                )
        elif status == "stale":
            features.update(dict.fromkeys(view.names, FeatureValue(None, "stale", age)))
        else:
            features.update(view.missing)
    return features


def lookup(
    spec: TaxiwaySpec,
    store: OnlineStore,
    entity: str,
    keys: Sequence[str],
    *,
    now: datetime | None = None,
) -> list[EntityFeatures]:
    """The features of ``entity`` for each key, in the order given, with one store read.

    Ages are computed in whole microseconds (the stored epoch seconds rounded to the
    microsecond, as a datetime would hold them), so they equal the datetime arithmetic's.
    Each view of each key is judged here (status and age); each result's ``features`` are
    built from those judgements on first access.
    """
    moment = now or datetime.now(UTC)
    now_us = (moment - _EPOCH) // _MICROSECOND
    stored = _records(store, entity, keys)
    layout = _layout(spec, entity)
    tiled = _tiled_values(spec, store, entity, keys, moment)
    nothing: list[_Judged] = [(view, _NO_VALUES, "missing", None) for view in layout]
    results = []
    for key in keys:
        views = stored.get(key)
        if views is None and not tiled.get(key):
            results.append(EntityFeatures._judged(entity, key, moment, nothing))
            continue
        views = views or {}
        columns: list[_Judged] = []
        for view in layout:
            found = views.get(view.name)
            if view.tiled is not None and key in tiled:
                computed = tiled[key].get(view.name)
                if computed is not None:
                    columns.append((view, computed, "present", 0.0))
                elif found is not None:  # known, but no event in its windows now
                    columns.append((view, _empty_windows(view.tiled, moment), "present", 0.0))
                else:
                    columns.append((view, _NO_VALUES, "missing", None))
                continue
            # status and age once per key and view (the module docstring's rules)
            if found is None:
                columns.append((view, _NO_VALUES, "missing", None))
                continue
            if view.by_event:  # a latest value: judged by when its fact happened, vs the ttl
                event_time = found["event_time"]
                if event_time is None:
                    columns.append((view, _NO_VALUES, "missing", None))
                    continue
                age_us = now_us - round(event_time * 1e6)
                if view.ttl_us is not None and age_us > view.ttl_us:
                    columns.append((view, _NO_VALUES, "stale", _seconds_3(age_us)))
                    continue
            else:
                age_us = now_us - round(found["as_of"] * 1e6)
            columns.append((view, found["values"], "present", _seconds_3(age_us)))
        results.append(EntityFeatures._judged(entity, key, moment, columns))
    return results


def _tiled_values(
    spec: TaxiwaySpec, store: OnlineStore, entity: str, keys: Sequence[str], moment: datetime
) -> dict[str, dict[str, dict[str, Any] | None]]:
    """Key → tiled view → its values at ``moment`` (None: no tile in range), with one tile
    read; empty when ``entity`` has no tiled view or the store keeps no tiles."""
    views = [view.tiled for view in _layout(spec, entity) if view.tiled is not None]
    if not views or getattr(store, "tiles", None) is None:
        return {}
    return read_tiled(store, views, keys, moment)


def _empty_windows(view: TiledView, moment: datetime) -> dict[str, Any]:
    """A tiled view's values when no event is in its windows (counts 0, the rest null)."""
    return window_values(view, {}, {}, at_us=(moment - _EPOCH) // _MICROSECOND)


def _records(store: OnlineStore, entity: str, keys: Sequence[str]) -> dict[str, Records]:
    """Each key's stored views as records (times in epoch seconds), with one store read.

    Our stores answer records directly (``read_records``); any other store's
    :class:`ViewValues` are converted, their datetimes to exact epoch microseconds.
    """
    read_records = getattr(store, "read_records", None)
    if read_records is not None:
        return cast(dict[str, Records], read_records(entity, keys))
    return {
        key: {
            view.view: {
                "values": view.values,
                "event_time": None if view.event_time is None else _seconds(view.event_time),
                "as_of": _seconds(view.as_of),
            }
            for view in views
        }
        for key, views in store.read(entity, list(keys)).items()
    }


def _seconds_3(microseconds: int) -> float:
    """``round(microseconds / 1e6, 3)``, in integer arithmetic when that gives the same float.

    A lookup rounds 500 ages per 100 keys, and ``round(x, 3)`` of a float goes through a
    decimal conversion (about 2.5x the time of this). Off a tie (a remainder of 500 us) the
    float ``microseconds / 1e6`` is far nearer its exact value than the 1 us to the tie (for
    ages under ~30 years: under 2**50 us), so both round the same way, and ``ms / 1000`` is
    the float nearest the rounded decimal, as ``round`` answers; ties, negative ages (a fact
    dated after ``now``: ``round`` keeps ``-0.0``) and larger ages take ``round`` itself.

    >>> [_seconds_3(us) for us in (0, 1_499, 1_501, 5_400_000_999, -1_400)]
    [0.0, 0.001, 0.002, 5400.001, -0.001]
    """
    if 0 <= microseconds < _EXACT_US:
        ms = microseconds // 1000
        remainder = microseconds - ms * 1000
        if remainder != 500:
            return (ms + (remainder > 500)) / 1000
    return round(microseconds / 1e6, 3)


def _seconds(moment: datetime) -> float:
    """``moment`` in epoch seconds, from its exact count of microseconds."""
    return ((moment - _EPOCH) // _MICROSECOND) / 1e6


def lookup_values(
    spec: TaxiwaySpec,
    store: OnlineStore,
    entity: str,
    key: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One key's feature values for scoring: name → value, None when missing or stale.

    Equal to ``lookup(spec, store, entity, [key], now=now)[0].values()`` without building a
    status and an age for every feature: the prediction service's path, where those objects
    cost more than the store read.
    """
    stored = store.read(entity, [key]).get(key)
    moment = now or datetime.now(UTC)
    tiled = _tiled_values(spec, store, entity, [key], moment).get(key)
    return values_of(spec, entity, stored, now=moment, tiled=tiled)


def values_of(
    spec: TaxiwaySpec,
    entity: str,
    stored: Sequence[ViewValues] | None,
    *,
    now: datetime | None = None,
    tiled: dict[str, dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The feature values of one key from its ``stored`` views (as a store read returns them).

    What :func:`lookup_values` does after its read, for callers that read the store
    themselves (the service's asynchronous Redis read). ``tiled``: the key's tiled views'
    values read from tiles (:func:`taxiway.features.tiles.read_tiled`); without it, tiled
    views serve their materialized snapshot.
    """
    moment = now or datetime.now(UTC)
    by_view = {v.view: v for v in stored} if stored else {}
    values: dict[str, Any] = {}
    for view in _layout(spec, entity):
        found = by_view.get(view.name)
        if tiled is not None and view.tiled is not None:
            computed = tiled.get(view.name)
            if computed is None and found is not None:
                computed = _empty_windows(view.tiled, moment)
            values.update(computed if computed is not None else view.nulls)
            continue
        if found is not None and view.by_event:
            event_time = found.event_time
            if event_time is None or (
                view.ttl_s is not None and (moment - event_time).total_seconds() > view.ttl_s
            ):
                found = None  # missing, or stale: never served
        if found is None:
            values.update(view.nulls)
        else:
            stored_values = found.values
            for name in view.names:
                values[name] = stored_values.get(name)
    return values


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MISSING = FeatureValue(None, "missing", None)
_EXACT_US = 2**50  # ages (us) below which _seconds_3 need not call round()
_new = tuple.__new__  # a FeatureValue without the Python-level __new__: one per feature
_NO_VALUES: dict[str, Any] = {}  # the stored values of a view that is not present (never written)
_ABSENT = object()  # a feature missing from its stored view


class _View(NamedTuple):
    """What a lookup needs of one view, computed once per (spec, entity)."""

    name: str
    names: list[str]  # its features' names, in the view's order
    ttl_s: float | None
    ttl_us: int | None  # the ttl in whole microseconds (a timedelta's own count)
    by_event: bool  # a latest value, judged by its event time (vs its as_of for the others)
    missing: dict[str, FeatureValue]  # every name → the "missing" value
    nulls: dict[str, None]  # every name → None
    tiled: TiledView | None  # a view kept as time tiles (``tiles:``), computed at lookup


_LAYOUTS: dict[tuple[int, str], tuple[TaxiwaySpec, list[_View]]] = {}


def _layout(spec: TaxiwaySpec, entity: str) -> list[_View]:
    """The views of ``entity``, in the spec's order.

    Computed once per (spec, entity): a lookup should not rebuild names per key.
    """
    cached = _LAYOUTS.get((id(spec), entity))
    if cached is not None and cached[0] is spec:
        return cached[1]
    layout: list[_View] = []
    tiled = set(tiled_views(spec, entity))
    for name, view in spec.features.items():
        if view.entity != entity:
            continue
        by_event = isinstance(view, LatestView) and spec.sources[view.source].timestamp is not None
        ttl = view.ttl if isinstance(view, LatestView) and view.ttl else None
        names = [c.name for c in view_columns(name, view)]
        missing = dict.fromkeys(names, _MISSING)
        layout.append(
            _View(
                name,
                names,
                None if ttl is None else ttl.total_seconds(),
                None if ttl is None else ttl // _MICROSECOND,
                by_event,
                missing,
                dict.fromkeys(names),
                TiledView.of(spec, name) if name in tiled else None,
            )
        )
    _LAYOUTS[(id(spec), entity)] = (spec, layout)
    return layout
