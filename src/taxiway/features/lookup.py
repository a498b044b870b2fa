"""Online lookups: feature vectors with each value's status and age, in one store round trip.

A value is ``present``, ``missing`` (never materialized for this key, or no known row) or
``stale`` (a latest-value older than its view's ``ttl`` at lookup time: returned as null, as
the training set would have it, never as if it were fresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from taxiway.features.definitions import view_columns
from taxiway.features.online.base import OnlineStore, ViewValues
from taxiway.spec.models import LatestView, TaxiwaySpec

__all__ = ["EntityFeatures", "FeatureValue", "lookup", "lookup_values", "values_of"]

Status = Literal["present", "missing", "stale"]


@dataclass(frozen=True)
class FeatureValue:
    """One served value."""

    value: Any
    status: Status
    age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"value": self.value, "status": self.status, "age_s": self.age_s}


@dataclass
class EntityFeatures:
    """Every feature of one entity key, judged at ``as_of``."""

    entity: str
    key: str
    as_of: datetime
    features: dict[str, FeatureValue] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the `taxiway features get` output)."""
        return {
            "entity": {self.entity: self.key},
            "as_of": self.as_of.isoformat(),
            "features": {name: value.as_dict() for name, value in self.features.items()},
        }

    def values(self) -> dict[str, Any]:
        """Feature name → value (null when missing or stale), for scoring."""
        return {name: value.value for name, value in self.features.items()}


def lookup(
    spec: TaxiwaySpec,
    store: OnlineStore,
    entity: str,
    keys: Sequence[str],
    *,
    now: datetime | None = None,
) -> list[EntityFeatures]:
    """The features of ``entity`` for each key, in the order given, with one store read."""
    moment = now or datetime.now(UTC)
    stored = store.read(entity, list(keys))
    layout = _layout(spec, entity)
    results = []
    for key in keys:
        by_view = {v.view: v for v in stored.get(key, [])}
        result = EntityFeatures(entity=entity, key=key, as_of=moment)
        features = result.features
        for view_name, names, ttl_s, judged_by_event in layout:
            found = by_view.get(view_name)
            status, age = _judge(found, ttl_s, judged_by_event, moment)
            if status == "present":
                assert found is not None
                values = found.values
                for name in names:
                    if name in values:
                        features[name] = FeatureValue(values[name], "present", age)
                    else:
                        features[name] = _MISSING
            else:
                blank = _MISSING if status == "missing" else FeatureValue(None, "stale", age)
                for name in names:
                    features[name] = blank
        results.append(result)
    return results


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
    return values_of(spec, entity, stored, now=now)


def values_of(
    spec: TaxiwaySpec,
    entity: str,
    stored: Sequence[ViewValues] | None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The feature values of one key from its ``stored`` views (as a store read returns them).

    What :func:`lookup_values` does after its read, for callers that read the store
    themselves (the service's asynchronous Redis read).
    """
    moment = now or datetime.now(UTC)
    by_view = {v.view: v for v in stored} if stored else {}
    values: dict[str, Any] = {}
    for view_name, names, ttl_s, judged_by_event in _layout(spec, entity):
        found = by_view.get(view_name)
        if found is not None and judged_by_event:
            event_time = found.event_time
            if event_time is None or (
                ttl_s is not None and (moment - event_time).total_seconds() > ttl_s
            ):
                found = None  # missing, or stale: never served
        if found is None:
            for name in names:
                values[name] = None
        else:
            stored_values = found.values
            for name in names:
                values[name] = stored_values.get(name)
    return values


_MISSING = FeatureValue(None, "missing", None)
_Layout = list[tuple[str, list[str], float | None, bool]]
_LAYOUTS: dict[tuple[int, str], tuple[TaxiwaySpec, _Layout]] = {}


def _layout(spec: TaxiwaySpec, entity: str) -> _Layout:
    """Per view of ``entity``: name, feature names, ttl in seconds, judged by event time.

    Computed once per (spec, entity): a lookup should not rebuild names per key.
    """
    cached = _LAYOUTS.get((id(spec), entity))
    if cached is not None and cached[0] is spec:
        return cached[1]
    layout: _Layout = []
    for name, view in spec.features.items():
        if view.entity != entity:
            continue
        by_event = isinstance(view, LatestView) and spec.sources[view.source].timestamp is not None
        ttl = view.ttl.total_seconds() if isinstance(view, LatestView) and view.ttl else None
        layout.append((name, [c.name for c in view_columns(name, view)], ttl, by_event))
    _LAYOUTS[(id(spec), entity)] = (spec, layout)
    return layout


def _judge(
    found: ViewValues | None, ttl_s: float | None, by_event: bool, moment: datetime
) -> tuple[Status, float | None]:
    """The status and age (seconds) of one view's values for one key."""
    if found is None:
        return "missing", None
    if by_event:  # a latest value: judged by when its fact happened, against the ttl
        if found.event_time is None:
            return "missing", None
        age = (moment - found.event_time).total_seconds()
        if ttl_s is not None and age > ttl_s:
            return "stale", round(age, 3)
        return "present", round(age, 3)
    return "present", round((moment - found.as_of).total_seconds(), 3)
