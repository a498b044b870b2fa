"""Feature definitions resolved from the spec: output names, inputs, and a definitions hash.

>>> from taxiway.spec import load_spec_text
>>> spec = load_spec_text('''
... name: demo
... sources: {orders: {kind: file, path: o.parquet, timestamp: at}}
... entities: {customer: customer_id}
... features:
...   stats: {source: orders, entity: customer, aggregate: {n: count(*)}, windows: [7d, 30d]}
... ''')
>>> [c.name for c in feature_columns(spec)]
['stats__n_7d', 'stats__n_30d']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from taxiway.spec.models import AggregateView, LatestView, StaticView, TaxiwaySpec

__all__ = ["FeatureColumn", "definitions_hash", "feature_columns", "view_columns"]


@dataclass(frozen=True)
class FeatureColumn:
    """One output column of the feature store."""

    name: str
    view: str
    kind: str  # aggregate | latest | static
    function: str | None = None
    column: str | None = None
    window: timedelta | None = None


def view_columns(name: str, view: AggregateView | LatestView | StaticView) -> list[FeatureColumn]:
    """The output columns of one view, in a stable order (names from the spec's views)."""
    names = view.output_names(name)
    if isinstance(view, AggregateView):
        specs = [(a, w) for a in view.aggregate.values() for w in view.windows]
        return [
            FeatureColumn(
                name=column,
                view=name,
                kind="aggregate",
                function=aggregation.function,
                column=aggregation.column,
                window=window,
            )
            for column, (aggregation, window) in zip(names, specs, strict=True)
        ]
    sources = view.latest if isinstance(view, LatestView) else view.static
    kind = "latest" if isinstance(view, LatestView) else "static"
    return [
        FeatureColumn(name=column, view=name, kind=kind, column=source)
        for column, source in zip(names, sources, strict=True)
    ]


def feature_columns(spec: TaxiwaySpec) -> list[FeatureColumn]:
    """Every feature column of the spec, view by view in spec order."""
    return [c for name, view in spec.features.items() for c in view_columns(name, view)]


def definitions_hash(spec: TaxiwaySpec) -> str:
    """A hash of everything that decides the values of a training set.

    It covers the features, entities, spine and label, and each used source's timing
    (timestamp, available_after, created), but not paths or descriptions: moving the data
    does not change the definitions.
    """
    used = {v.source for v in spec.features.values()}
    if spec.spine is not None:
        used.add(spec.spine.source)
    if spec.label is not None and hasattr(spec.label, "source"):
        used.add(spec.label.source)
    timing = {
        name: {
            "timestamp": source.timestamp,
            "available_after": source.available_after.total_seconds(),
            "created": source.created,
        }
        for name, source in sorted(spec.sources.items())
        if name in used
    }
    payload: dict[str, Any] = {
        "features": {
            k: v.model_dump(mode="json", exclude={"description"}) for k, v in spec.features.items()
        },
        "entities": spec.entities,
        "spine": spec.spine.model_dump(mode="json") if spec.spine else None,
        "label": spec.label.model_dump(mode="json", exclude={"description"})
        if spec.label
        else None,
        "sources": timing,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
