"""What one run of the recommendation monitor is given: plain data, resolved above this layer
(the CLI reads the registry's version, its catalog and the interactions source)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from taxiway.monitoring.recs.measures import popularity_deciles
from taxiway.spec.models import Monitoring

__all__ = ["CatalogFacts", "RecsInputs"]


@dataclass(frozen=True)
class CatalogFacts:
    """The served version's catalog: every item id it knows (``items``), which are on offer
    now (``available``), and each item's popularity in the version's history (``popularity``,
    aligned with ``items``: interactions counted).

    An item's popularity decile ranks it among the catalog's items, most popular first (ties by
    id): decile 1 holds the 10% most popular items, decile 10 the least (``1 + rank * 10 // n``,
    :func:`~taxiway.monitoring.recs.measures.popularity_deciles`, as training labels them).

    >>> facts = CatalogFacts(("a", "b", "c", "d"), frozenset({"a", "b"}),
    ...                      np.array([1.0, 9.0, 5.0, 0.0]))
    >>> facts.decile_of("b"), facts.decile_of("d"), facts.decile_of("zz")
    (1, 8, None)
    """

    items: tuple[str, ...]
    available: frozenset[str]
    popularity: NDArray[np.float64]
    _deciles: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        deciles = popularity_deciles(self.popularity, self.items).tolist()
        object.__setattr__(self, "_deciles", dict(zip(self.items, deciles, strict=True)))

    def decile_of(self, item: str) -> int | None:
        """The item's popularity decile (1 most popular .. 10), None when not in the catalog."""
        return self._deciles.get(item)

    def knows(self, item: str) -> bool:
        """Whether the version's catalog lists the item."""
        return item in self._deciles

    def fingerprint(self) -> str:
        """What windows counted against this catalog depend on (its size and first ids)."""
        return f"{len(self.items)}:{','.join(self.items[:20])}"


Interactions = Callable[[], pa.Table]
"""Reads the interactions source (through its contract): a table with ``user`` (string),
``item`` (string) and ``at`` (int64, µs since the epoch, UTC: when the interaction was known)."""


@dataclass(frozen=True)
class RecsInputs:
    """Everything a run needs.

    ``state_folder`` is this version's monitor folder (the CLI uses
    ``<state>/monitor/<model>-v<version>``; the recommendation windows go to ``recs/`` in it,
    the latency windows to ``windows/``). ``metrics`` is the version's registered metrics
    (``metrics["model"]["recall@10"]``, ``metrics["stage_share"]``...). ``interactions`` is
    called only when answers wait to be judged. ``outcome_name`` is the spec's rollout metric:
    the click-through the summary leads with (every name posted is counted). ``k`` is the
    cut of the realised recall (the spec's metric's, e.g. 10 for ``recall@10``). ``horizon``
    (how long after an answer the user's interactions are what they did next) overrides
    ``monitoring.recommend.horizon`` (default 7 days) when given.
    """

    model: str
    version: int
    log_folder: Path
    outcomes_folder: Path | None
    state_folder: Path
    window: timedelta
    since: datetime | None
    budget_ms: float | None
    monitoring: Monitoring | None
    catalog: CatalogFacts
    metrics: Mapping[str, Any]
    k: int
    interactions: Interactions | None = None
    outcome_name: str | None = None
    horizon: timedelta | None = None
    now: datetime | None = None
    notes: list[str] = field(default_factory=list)
