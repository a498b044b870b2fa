"""The catalog as of a time: which items are available and their categories.

Semantics:

- a catalog without a timestamp has one row per item (the last row read wins when an item
  repeats); a catalog with a timestamp is a history: an item's row as of ``t`` is its newest
  row with timestamp <= t (ties: the row read last).
- an item with no row as of ``t`` (not listed yet), or whose ``available`` is null, is not
  available: only what the catalog says is on offer is on offer.
- without an ``available`` column every listed item is available; without a ``category``
  column no item has one (category code ``-1``).

>>> import numpy as np
>>> catalog = Catalog(item=np.array([0, 0, 1], np.int32), at=np.array([0, 10, 0], np.int64),
...     available=np.array([True, False, True]), category=np.array([0, 0, 1], np.int32),
...     categories=("shoes", "socks"), n_items=3)
>>> catalog.as_of(5).available.tolist(), catalog.as_of(10).available.tolist()
([True, True, False], [False, True, False])
>>> catalog.as_of(10).category.tolist()
[0, 1, -1]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

__all__ = ["ALWAYS", "Catalog", "CatalogState", "catalog_from_table"]

ALWAYS = np.iinfo(np.int64).min
"""The time of a row of a catalog without a timestamp: listed since always."""


@dataclass(frozen=True, eq=False)
class CatalogState:
    """The catalog at one time, indexed by item code (read-only arrays: a state may be shared
    by every request after the catalog's newest row)."""

    available: NDArray[np.bool_]
    category: NDArray[np.int32]

    @cached_property
    def unavailable(self) -> NDArray[np.int32]:
        """The codes of the items not available, sorted (computed once per state)."""
        hidden = np.flatnonzero(~self.available).astype(np.int32)
        hidden.setflags(write=False)
        return hidden


@dataclass(frozen=True, eq=False)
class Catalog:
    """Catalog rows by item code, sorted by item then time (see the module's semantics)."""

    item: NDArray[np.int32]
    at: NDArray[np.int64]
    available: NDArray[np.bool_]
    category: NDArray[np.int32]
    categories: tuple[str, ...]
    n_items: int
    _latest: list[CatalogState] = field(default_factory=list, init=False, repr=False)
    """The state after the newest row, once asked: every later time has that same state, so a
    service asking "now" on every request builds it once (not two catalog-long arrays each)."""

    def __post_init__(self) -> None:
        order = np.lexsort((np.arange(len(self.item)), self.at, self.item))
        for name in ("item", "at", "available", "category"):
            object.__setattr__(self, name, getattr(self, name)[order])

    @classmethod
    def listing(cls, n_items: int) -> Catalog:
        """Every item available since always, no categories (a catalog with no columns)."""
        return cls(
            item=np.arange(n_items, dtype=np.int32),
            at=np.full(n_items, ALWAYS, dtype=np.int64),
            available=np.ones(n_items, dtype=bool),
            category=np.full(n_items, -1, dtype=np.int32),
            categories=(),
            n_items=n_items,
        )

    def as_of(self, at_us: int) -> CatalogState:
        """Availability and category of every item code at ``at_us``."""
        if self._latest and at_us >= self._newest:
            return self._latest[0]
        state = self._state(at_us)
        if at_us >= self._newest:
            state.available.setflags(write=False)
            state.category.setflags(write=False)
            self._latest.append(state)
        return state

    @cached_property
    def _newest(self) -> int:
        """The time of the newest row (every time at or after it has the same state)."""
        return int(self.at.max()) if len(self.at) else ALWAYS

    def _state(self, at_us: int) -> CatalogState:
        listed = self.at <= np.int64(at_us)
        item = self.item[listed]
        last = np.flatnonzero(np.r_[item[1:] != item[:-1], True]) if len(item) else item
        available = np.zeros(self.n_items, dtype=bool)
        category = np.full(self.n_items, -1, dtype=np.int32)
        available[item[last]] = self.available[listed][last]
        category[item[last]] = self.category[listed][last]
        return CatalogState(available=available, category=category)

    def known_by(self, at_us: int) -> Catalog:
        """The catalog without its rows after ``at_us`` (a training as of a past time)."""
        keep = self.at <= np.int64(at_us)
        return Catalog(
            item=self.item[keep],
            at=self.at[keep],
            available=self.available[keep],
            category=self.category[keep],
            categories=self.categories,
            n_items=self.n_items,
        )

    def to_arrow(self) -> pa.Table:
        """The rows as a table (``item``, ``at``, ``available``, ``category`` codes)."""
        return pa.table(
            {
                "item": pa.array(self.item),
                "at": pa.array(self.at),
                "available": pa.array(self.available),
                "category": pa.array(self.category),
            }
        )

    @classmethod
    def from_arrow(cls, table: pa.Table, *, categories: tuple[str, ...], n_items: int) -> Catalog:
        """The inverse of :meth:`to_arrow`."""
        return cls(
            item=np.asarray(table["item"].to_numpy(), dtype=np.int32),
            at=np.asarray(table["at"].to_numpy(), dtype=np.int64),
            available=np.asarray(table["available"].to_numpy(zero_copy_only=False), dtype=bool),
            category=np.asarray(table["category"].to_numpy(), dtype=np.int32),
            categories=categories,
            n_items=n_items,
        )


def catalog_from_table(
    table: pa.Table,
    *,
    items: NDArray[np.object_],
    item: str,
    at: str | None = None,
    available: str | None = None,
    category: str | None = None,
) -> Catalog:
    """Code a catalog source's rows against the item vocabulary ``items`` (ids by code).

    Ids are ``str()`` of the values, as in :class:`~taxiway.recommend.interactions.Interactions`;
    rows with a null item, or an item outside ``items``, are left out; a null time reads as
    "since always".
    """
    ids = [None if v is None else str(v) for v in table[item].to_pylist()]
    codes_by_id = {str(i): code for code, i in enumerate(items.tolist())}
    codes = np.array([codes_by_id.get(i, -1) if i is not None else -1 for i in ids], np.int64)
    keep = codes >= 0
    n = len(codes)
    if at is None:
        times = np.full(n, ALWAYS, dtype=np.int64)
    else:
        column = table[at].combine_chunks()
        if pa.types.is_date(column.type):
            column = column.cast(pa.timestamp("s"))
        micros = column.cast(pa.timestamp("us", tz=getattr(column.type, "tz", None)))
        values = micros.cast(pa.int64()).fill_null(ALWAYS)
        times = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)
    if available is None:
        flags = np.ones(n, dtype=bool)
    else:
        flags = np.array([v is True or v == 1 for v in table[available].to_pylist()], dtype=bool)
    if category is None:
        names: tuple[str, ...] = ()
        groups = np.full(n, -1, dtype=np.int32)
    else:
        labels = [None if v is None else str(v) for v in table[category].to_pylist()]
        names = tuple(sorted({v for v in labels if v is not None}))
        index = {name: code for code, name in enumerate(names)}
        groups = np.array([index.get(v, -1) if v is not None else -1 for v in labels], np.int32)
    return Catalog(
        item=codes[keep].astype(np.int32),
        at=times[keep],
        available=flags[keep],
        category=groups[keep],
        categories=names,
        n_items=len(items),
    )
