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

__all__ = ["EntityFeatures", "FeatureValue", "lookup"]

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
    views = {name: view for name, view in spec.features.items() if view.entity == entity}
    results = []
    for key in keys:
        by_view = {v.view: v for v in stored.get(key, [])}
        result = EntityFeatures(entity=entity, key=key, as_of=moment)
        for view_name, view in views.items():
            found = by_view.get(view_name)
            timed = spec.sources[view.source].timestamp is not None
            for column in view_columns(view_name, view):
                result.features[column.name] = _judge(view, timed, found, column.name, moment)
        results.append(result)
    return results


def _judge(
    view: Any, timed: bool, found: ViewValues | None, name: str, moment: datetime
) -> FeatureValue:
    if found is None or name not in found.values:
        return FeatureValue(None, "missing", None)
    if isinstance(view, LatestView) and timed:
        if found.event_time is None:
            return FeatureValue(None, "missing", None)
        age = (moment - found.event_time).total_seconds()
        if view.ttl is not None and age > view.ttl.total_seconds():
            return FeatureValue(None, "stale", round(age, 3))
        return FeatureValue(found.values[name], "present", round(age, 3))
    age = (moment - found.as_of).total_seconds()
    return FeatureValue(found.values[name], "present", round(age, 3))
