"""The ``recommend:`` section: a top-k recommendation use case, from interactions to top k.

A recommender runs four stages: candidate generators retrieve items (``candidates``, the first
is the primary model), ``filters`` remove what must never be shown (already seen, unavailable,
denied), an optional ``ranking`` stage rescores the candidates with features, and ``ordering``
reshapes the final list (at most N per category). ``k`` items are returned and judged on
``metric`` over a global time ``split``. These models only describe; the work lives in
:mod:`taxiway.recommend`. References between sections (sources, views, catalog columns) are
checked by the loader, which knows the file and line of each key.

>>> spec = RecommendSpec.model_validate({
...     "interactions": {"source": "orders", "user": "customer_id", "item": "product_id"},
...     "catalog": {"source": "products", "item": "product_id"},
...     "candidates": [{"kind": "ease"}, {"kind": "popularity", "window": "30d"}],
...     "k": 20})
>>> spec.metric, spec.metric_at, spec.candidates[0].k, spec.candidates[1].window.days
('recall@20', ('recall', 20), 200, 30)
>>> [f.kind for f in spec.filters], spec.split.cutoff, spec.ordering
(['already_seen'], None, None)
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from taxiway.spec.models import Column, PositiveDuration, _Model

__all__ = [
    "METRICS",
    "AlreadySeenFilter",
    "AlsGenerator",
    "BprGenerator",
    "CatalogSpec",
    "DenyFilter",
    "EaseGenerator",
    "Filter",
    "Generator",
    "InteractionsSpec",
    "ItemKnnGenerator",
    "OrderingSpec",
    "PopularityGenerator",
    "RankingSpec",
    "RecommendSpec",
    "SegmentPopularityGenerator",
    "SplitSpec",
    "parse_metric",
]

METRICS = ("recall", "ndcg", "map", "hit_rate")
"""The ranking metrics a recommender can be judged on, each written ``<name>@<k>``."""

_METRIC = re.compile(r"(recall|ndcg|map|hit_rate)@([0-9]+)")
_METRIC_EXPECTED = "<metric>@<k> with metric one of recall, ndcg, map, hit_rate, e.g. recall@10"

MetricName = Literal["recall", "ndcg", "map", "hit_rate"]


def parse_metric(text: str) -> tuple[MetricName, int]:
    """Split ``recall@10`` into ``("recall", 10)``; raise ``ValueError`` naming the form.

    >>> parse_metric("ndcg@5")
    ('ndcg', 5)
    >>> parse_metric("precision@10")
    Traceback (most recent call last):
    ...
    ValueError: 'precision@10' is not a metric; expected <metric>@<k> with metric one of ...
    """
    match = _METRIC.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a metric; expected {_METRIC_EXPECTED}")
    name, k = match.groups()
    if int(k) <= 0:
        raise ValueError(f"{text!r}: k must be at least 1, e.g. {name}@10")
    return name, int(k)  # type: ignore[return-value]  # the pattern admits only MetricName


# --------------------------------------------------------------------------- data


class InteractionsSpec(_Model):
    """Who interacted with which item, when: one row per event of ``source``.

    The source's ``timestamp`` orders the events (the split and every as-of lookup use it) and
    its contract applies, as for any source.
    """

    source: str = Field(description="The source holding the events (it needs a `timestamp`).")
    user: Column = Field(description="The column identifying the user.")
    item: Column = Field(description="The column identifying the item.")
    weight: Column | None = Field(
        default=None, description="A column of weights (a quantity); default: 1 per row."
    )
    event_type: Column | None = Field(
        default=None, description="A column naming the event (view, cart, purchase...)."
    )

    @model_validator(mode="after")
    def _distinct_columns(self) -> InteractionsSpec:
        named = [c for c in (self.user, self.item, self.weight, self.event_type) if c]
        if len(set(named)) != len(named):
            raise ValueError(
                "user, item, weight and event_type must name different columns, got "
                + ", ".join(named)
            )
        return self


class CatalogSpec(_Model):
    """The items that may be recommended, one row per item (or per item and time).

    A catalog source with a ``timestamp`` is a history: an item's row as of time t is its newest
    row with timestamp <= t (so stock changes are replayed at evaluation as at serving).
    """

    source: str = Field(description="The source listing the items.")
    item: Column = Field(description="The column identifying the item (as in interactions).")
    available: Column | None = Field(
        default=None, description="A boolean column: false hides the item (`unavailable`)."
    )
    category: Column | None = Field(
        default=None, description="A column grouping items (`ordering.max_per_category`)."
    )


# --------------------------------------------------------------------------- generators


class _GeneratorBase(_Model):
    k: int = Field(default=200, gt=0, description="How many candidates the generator returns.")


class PopularityGenerator(_GeneratorBase):
    """The most interacted-with items (weighted) over ``window``: the baseline every model
    must beat, and the fallback for users without history."""

    kind: Literal["popularity"]
    window: PositiveDuration | None = Field(
        default=None,
        description="Count interactions this long before the newest training interaction; "
        "default: all history.",
    )


class SegmentPopularityGenerator(_GeneratorBase):
    """Popularity in the user's segment: the share of their history per catalog category times
    each item's popularity within its category over ``window``. The fallback chain's step
    between item-to-item and global popularity; a user without history gets nothing from it."""

    kind: Literal["segment_popularity"]
    window: PositiveDuration | None = Field(
        default=None,
        description="Count interactions this long before the newest training interaction; "
        "default: all history.",
    )
    by: Literal["category"] = Field(
        default="category",
        description="What segments the user: the shares of their history per catalog.category "
        "(the only one for now; it needs catalog.category).",
    )


class ItemKnnGenerator(_GeneratorBase):
    """Item-to-item cosine similarity of co-occurrence; a user's score is history @ S."""

    kind: Literal["itemknn"]
    neighbours: int = Field(default=100, gt=0, description="Similar items kept per item.")


class EaseGenerator(_GeneratorBase):
    """EASE (Steck 2019): a closed-form item-item linear model with L2 regularisation."""

    kind: Literal["ease"]
    l2: float = Field(default=500.0, gt=0, description="The L2 regularisation strength.")


class AlsGenerator(_GeneratorBase):
    """Implicit-feedback matrix factorisation by alternating least squares (``implicit``)."""

    kind: Literal["als"]
    factors: int = Field(default=64, gt=0)
    iterations: int = Field(default=15, gt=0)
    regularization: float = Field(default=0.01, ge=0)
    alpha: float = Field(default=1.0, gt=0, description="Confidence per unit of weight.")
    exact_limit: int = Field(
        default=50_000,
        gt=0,
        description="Score every item exactly up to this catalog size; above it, search an "
        "approximate inner-product index.",
    )


class BprGenerator(_GeneratorBase):
    """Bayesian personalised ranking (``implicit``), a pairwise matrix factorisation."""

    kind: Literal["bpr"]
    factors: int = Field(default=64, gt=0)
    iterations: int = Field(default=100, gt=0)
    learning_rate: float = Field(default=0.01, gt=0)
    regularization: float = Field(default=0.01, ge=0)
    exact_limit: int = Field(
        default=50_000,
        gt=0,
        description="Score every item exactly up to this catalog size; above it, search an "
        "approximate inner-product index.",
    )


Generator = Annotated[
    PopularityGenerator
    | SegmentPopularityGenerator
    | ItemKnnGenerator
    | EaseGenerator
    | AlsGenerator
    | BprGenerator,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- filters


class AlreadySeenFilter(_Model):
    """Never recommend what the user already interacted with (within ``lookback``)."""

    kind: Literal["already_seen"]
    lookback: PositiveDuration | None = Field(
        default=None, description="Only interactions this recent count; default: all history."
    )
    event_types: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Only these event types count (needs interactions.event_type); default: all.",
    )


class UnavailableFilter(_Model):
    """Never recommend an item whose catalog row says it is unavailable at that time."""

    kind: Literal["unavailable"]


class DenyFilter(_Model):
    """Never recommend the items listed in ``source`` (recalled, banned...)."""

    kind: Literal["deny"]
    source: str = Field(description="The source listing the denied items.")
    item: Column | None = Field(default=None, description="Its item column; default: catalog.item.")


Filter = Annotated[AlreadySeenFilter | UnavailableFilter | DenyFilter, Field(discriminator="kind")]


def _default_filters() -> list[Filter]:
    return [AlreadySeenFilter(kind="already_seen")]


# --------------------------------------------------------------------------- later stages


class RankingSpec(_Model):
    """A learning-to-rank stage over the candidates, with features looked up point in time."""

    kind: Literal["lambdarank"] = "lambdarank"
    features: list[str] = Field(
        default_factory=list, description="Feature views of this spec (user and item features)."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="LightGBM parameters.")


class OrderingSpec(_Model):
    """How the final list is reshaped after filtering and ranking."""

    max_per_category: int = Field(
        gt=0, description="At most this many items of one catalog.category in the list."
    )


def _cutoff(value: object) -> object:
    """A date or datetime (YAML gives both); ISO text is accepted for the Python API."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
    raise ValueError(
        f"expected a date such as 2025-12-01 or a time such as 2025-12-01T06:00:00Z, got {value!r}"
    )


class SplitSpec(_Model):
    """The global time split: train on what happened before ``cutoff``, evaluate after it."""

    cutoff: Annotated[date | datetime | None, BeforeValidator(_cutoff)] = Field(
        default=None, description="Default: the last 10% of the interactions' time range."
    )


# --------------------------------------------------------------------------- the section


class RecommendSpec(_Model):
    """A recommendation use case: retrieve, filter, rank, order; judged on a time split."""

    interactions: InteractionsSpec
    catalog: CatalogSpec
    candidates: list[Generator] = Field(
        min_length=1, description="Candidate generators; the first is the primary model."
    )
    filters: list[Filter] = Field(
        default_factory=_default_filters,
        description="Applied by taxiway at evaluation and at serving; default: already_seen.",
    )
    ranking: RankingSpec | None = None
    ordering: OrderingSpec | None = None
    k: int = Field(default=10, gt=0, description="How many items each answer holds.")
    metric: str = Field(
        default="recall@10",
        description="The metric the model must beat popularity on; default: recall@<k>.",
    )
    split: SplitSpec = Field(default_factory=SplitSpec)

    @model_validator(mode="before")
    @classmethod
    def _metric_from_k(cls, data: Any) -> Any:
        """An omitted metric is recall at the declared k."""
        if isinstance(data, dict) and data.get("metric") is None:
            k = data.get("k", 10)
            if isinstance(k, int) and not isinstance(k, bool) and k > 0:
                return {**data, "metric": f"recall@{k}"}
        return data

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        parse_metric(value)
        return value.strip()

    @property
    def metric_at(self) -> tuple[MetricName, int]:
        """The metric split into its name and cut-off: ``("recall", 10)``."""
        return parse_metric(self.metric)

    @property
    def primary(self) -> Generator:
        """The first generator: the model whose candidates come first."""
        return self.candidates[0]
