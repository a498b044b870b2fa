"""Filters taxiway enforces: exclusion masks (request rows x items) built from one code path.

Each filter reads the same inputs at evaluation and at serving (:class:`FilterInputs`: the
requested users' histories as of ``at`` with the request's recent items, and the catalog as of
``at``) and answers a csr mask whose non-zeros are the items that row must never get. The
generators take the summed mask as ``exclude`` and the pipeline checks every answer against it
again, so no filtered item is ever returned, whichever stage produced the list.

- ``already_seen``: items in the row's history within ``lookback`` before ``at``
  (``at - lookback <= t < at``, recent items at ``at`` included), of ``event_types`` only when
  given (recent items carry no event type: they count only when every event type does).
- ``unavailable``: items the catalog as of ``at`` does not list as available.
- ``deny``: a fixed set of items (recalled, banned...), for every row.

>>> import numpy as np
>>> from taxiway.recommend.catalog import Catalog
>>> from taxiway.recommend.history import HistoryRows
>>> seen = HistoryRows(n_rows=2, n_items=4, at_us=100, row=np.array([0, 1], np.int32),
...     item=np.array([1, 2], np.int32), at=np.array([10, 95], np.int64),
...     weight=np.ones(2, np.float32), event=np.zeros(2, np.int8))
>>> inputs = FilterInputs(seen, Catalog.listing(4).as_of(100), events=("",))
>>> filters = [AlreadySeen(lookback_us=20), Deny(items=np.array([3], np.int32))]
>>> exclusion_mask(filters, inputs).toarray().astype(int).tolist()
[[0, 0, 0, 1], [0, 0, 1, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.catalog import CatalogState
from taxiway.recommend.history import HistoryRows

__all__ = [
    "AlreadySeen",
    "Deny",
    "ExclusionFilter",
    "FilterInputs",
    "Unavailable",
    "exclusion_mask",
    "filter_from_json",
    "same_for_every_row",
]


@dataclass(frozen=True, eq=False)
class FilterInputs:
    """What every filter reads: the rows' histories as of ``seen.at_us`` and the catalog then."""

    seen: HistoryRows
    catalog: CatalogState
    events: tuple[str, ...]
    """Event types by code (the interactions' vocabulary)."""

    @property
    def shape(self) -> tuple[int, int]:
        """Rows x items of every mask."""
        return self.seen.n_rows, self.seen.n_items


class ExclusionFilter(Protocol):
    """One filter: a mask of what each row must never get, and its JSON form."""

    kind: ClassVar[str]

    def mask(self, inputs: FilterInputs) -> sp.csr_matrix:
        """Rows x items, non-zero where the item is excluded for that row."""
        ...

    def to_json(self, items: NDArray[np.object_]) -> dict[str, Any]:
        """The filter as JSON (item ids from ``items``, never codes)."""
        ...


@dataclass(frozen=True)
class AlreadySeen:
    """Items the user interacted with within ``lookback`` (all history when None)."""

    lookback_us: int | None = None
    event_types: tuple[str, ...] | None = None
    kind: ClassVar[str] = "already_seen"

    def mask(self, inputs: FilterInputs) -> sp.csr_matrix:
        seen = inputs.seen
        keep = np.ones(len(seen.row), dtype=bool)
        if self.lookback_us is not None:
            keep &= seen.at >= np.int64(seen.at_us - self.lookback_us)
        if self.event_types is not None:
            codes = [c for c, name in enumerate(inputs.events) if name in self.event_types]
            keep &= np.isin(seen.event, np.array(codes, dtype=np.int8))
        matrix = seen.matrix(keep)
        matrix.data = np.ones_like(matrix.data)
        return matrix

    def pairs(self, inputs: FilterInputs) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The (row, item) pairs of :meth:`mask`, unsorted and maybe repeated: no matrix."""
        seen = inputs.seen
        keep = np.ones(len(seen.row), dtype=bool)
        if self.lookback_us is not None:
            keep &= seen.at >= np.int64(seen.at_us - self.lookback_us)
        if self.event_types is not None:
            codes = [c for c, name in enumerate(inputs.events) if name in self.event_types]
            keep &= np.isin(seen.event, np.array(codes, dtype=np.int8))
        return seen.row[keep].astype(np.int64), seen.item[keep].astype(np.int64)

    def to_json(self, items: NDArray[np.object_]) -> dict[str, Any]:
        events = list(self.event_types) if self.event_types is not None else None
        return {"kind": self.kind, "lookback_us": self.lookback_us, "event_types": events}


@dataclass(frozen=True)
class Unavailable:
    """Items the catalog as of ``at`` does not list as available."""

    kind: ClassVar[str] = "unavailable"

    def mask(self, inputs: FilterInputs) -> sp.csr_matrix:
        return same_for_every_row(inputs.catalog.unavailable, *inputs.shape)

    def pairs(self, inputs: FilterInputs) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The (row, item) pairs of :meth:`mask`: no matrix."""
        return _every_row(inputs.catalog.unavailable.astype(np.int64), inputs.shape[0])

    def to_json(self, items: NDArray[np.object_]) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass(frozen=True, eq=False)
class Deny:
    """A fixed set of item codes no row ever gets."""

    items: NDArray[np.int32]
    kind: ClassVar[str] = "deny"

    def mask(self, inputs: FilterInputs) -> sp.csr_matrix:
        return same_for_every_row(np.unique(self.items), *inputs.shape)

    def pairs(self, inputs: FilterInputs) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The (row, item) pairs of :meth:`mask`: no matrix."""
        return _every_row(np.asarray(self.items, dtype=np.int64), inputs.shape[0])

    def to_json(self, items: NDArray[np.object_]) -> dict[str, Any]:
        return {"kind": self.kind, "items": [str(items[code]) for code in np.unique(self.items)]}


def same_for_every_row(codes: NDArray[np.int32], n_rows: int, n_items: int) -> sp.csr_matrix:
    """A rows x items mask with the same excluded ``codes`` (sorted, unique) in every row."""
    codes = np.asarray(codes, dtype=np.int32)
    indptr = np.arange(n_rows + 1, dtype=np.int64) * len(codes)
    data = np.ones(n_rows * len(codes), dtype=np.float32)
    return sp.csr_matrix((data, np.tile(codes, n_rows), indptr), shape=(n_rows, n_items))


def _every_row(
    codes: NDArray[np.int64], n_rows: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The (row, item) pairs of ``codes`` in each of ``n_rows`` rows."""
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), len(codes))
    return rows, np.tile(codes, n_rows)


def exclusion_mask(filters: Sequence[ExclusionFilter], inputs: FilterInputs) -> sp.csr_matrix:
    """Every filter's mask together: 1 where any filter excludes the item for the row.

    Built once from every filter's (row, item) pairs (a filter without ``pairs`` gives its
    mask's non-zeros): one sort of the keys ``row * n_items + item`` and one CSR with sorted,
    unique indices, instead of a sparse sum per filter (scipy's per-construction checks were
    a third of a single-user request's CPU).
    """
    n_rows, n_items = inputs.shape
    keys = [np.zeros(0, dtype=np.int64)]
    for one in filters:
        pairs = getattr(one, "pairs", None)
        if pairs is not None:
            rows, cols = pairs(inputs)
        else:
            coo = sp.coo_matrix(one.mask(inputs))
            nonzero = coo.data != 0
            rows = coo.row[nonzero].astype(np.int64)
            cols = coo.col[nonzero].astype(np.int64)
        if len(cols) and (cols.min() < 0 or cols.max() >= n_items):
            raise ModelError(
                f"filter {one.kind!r} excludes item codes outside 0..{n_items - 1}",
                fix="give the filter item codes of the recommender's catalog",
            )
        keys.append(rows * np.int64(n_items) + cols)
    unique = _sorted_unique(np.concatenate(keys))
    indptr = np.searchsorted(unique, np.arange(n_rows + 1, dtype=np.int64) * np.int64(n_items))
    index = np.int32 if len(unique) < np.iinfo(np.int32).max else np.int64
    indices = (unique % np.int64(n_items)).astype(index)
    total = sp.csr_matrix(
        (np.ones(len(unique), dtype=np.float32), indices, indptr.astype(index)),
        shape=(n_rows, n_items),
    )
    total.has_sorted_indices = True
    total.has_canonical_format = True
    return total


def _sorted_unique(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """``np.unique(keys)`` by a sort and a neighbour test: numpy 2's ``unique`` hashes before
    it sorts, ~15x slower on the few thousand keys of one request (180 vs 12 us).

    >>> _sorted_unique(np.array([5, 1, 5, 3, 1], dtype=np.int64)).tolist()
    [1, 3, 5]
    """
    ordered = np.sort(keys)
    if len(ordered) < 2:
        return ordered
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def filter_from_json(data: dict[str, Any], items: NDArray[np.object_]) -> ExclusionFilter:
    """The inverse of ``to_json``: item ids resolved against ``items`` (unknown ids dropped)."""
    kind = data.get("kind")
    if kind == AlreadySeen.kind:
        events = data.get("event_types")
        return AlreadySeen(
            lookback_us=data.get("lookback_us"),
            event_types=tuple(events) if events is not None else None,
        )
    if kind == Unavailable.kind:
        return Unavailable()
    if kind == Deny.kind:
        codes = {str(item): code for code, item in enumerate(items.tolist())}
        found = [codes[i] for i in data.get("items", []) if i in codes]
        return Deny(items=np.array(sorted(found), dtype=np.int32))
    raise ModelError(
        f"unknown filter {kind!r} in a saved recommender",
        fix="load it with the taxiway version that saved it, or train it again",
    )
