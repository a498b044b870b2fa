"""Interactions (who did what to which item, when) as integer codes, the input of every generator.

Semantics:

- ids are strings: ``str()`` of the source's values (``7`` and ``"7"`` are the same user), so
  an id read from a request matches an id read from a table.
- ``users`` and ``items`` map codes to ids, sorted; ``items`` is the whole catalog when one is
  given (``items=``), so an item nobody has touched yet has a code. An interaction with an item
  outside a given catalog is dropped: a recommender only returns what the catalog offers.
- rows with a null user, item, time or weight are dropped (the source's contract quarantines
  bad rows before this point; this is the last guard, never a crash).
- ``at`` is microseconds since the epoch, UTC; a naive timestamp is read as UTC.
- ``weight`` is 1.0 per row when the spec names no weight column; ``matrix()`` sums weights of
  repeated (user, item) pairs.
- ``events`` are the event types sorted (a null type is ``""``); ``("",)`` when the spec names no
  event column, every row coded 0.
- ``where`` and ``before`` keep the vocabularies, so codes mean the same items before and after a
  time split and a model fitted on the past scores the same columns as the present.

>>> import pyarrow as pa
>>> from datetime import datetime
>>> table = pa.table({"customer": [1, 2, 1], "product": ["a", "b", "b"],
...                   "ts": [datetime(2025, 1, d) for d in (1, 2, 3)]})
>>> data = Interactions.from_arrow(table, user="customer", item="product", at="ts",
...                                items=["a", "b", "c"])
>>> data.users.tolist(), data.items.tolist(), data.matrix().toarray().tolist()
(['1', '2'], ['a', 'b', 'c'], [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
>>> len(data.before(int(datetime(2025, 1, 3).timestamp() * 1e6))), data.user_code("9")
(2, -1)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import SpecError

__all__ = ["Interactions"]

_MAX_EVENTS = int(np.iinfo(np.int8).max) + 1


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interactions as integer codes; ids are strings (str() of the source's values)."""

    user: NDArray[np.int32]
    """Code into ``users``, one per interaction."""
    item: NDArray[np.int32]
    """Code into ``items``, one per interaction."""
    at: NDArray[np.int64]
    """When, in microseconds since the epoch, UTC."""
    weight: NDArray[np.float32]
    """1.0 when the spec names no weight."""
    event: NDArray[np.int8]
    """Code into ``events``; 0 and ``events == ("",)`` when the spec names no event type."""
    users: NDArray[np.object_]
    """User ids by code."""
    items: NDArray[np.object_]
    """Item ids by code: the whole catalog's items, not only those seen."""
    events: tuple[str, ...]
    """Event types by code."""

    @classmethod
    def from_arrow(
        cls,
        table: pa.Table,
        *,
        user: str,
        item: str,
        at: str,
        weight: str | None = None,
        event: str | None = None,
        items: Sequence[str] | None = None,
    ) -> Interactions:
        """Code ``table``'s interactions; ``items`` is the catalog (default: the items seen)."""
        named = [c for c in (user, item, at, weight, event) if c is not None]
        missing = [c for c in named if c not in table.column_names]
        if missing:
            raise SpecError(
                f"the interactions have no column {', '.join(missing)} "
                f"(columns: {', '.join(table.column_names)})",
                fix="name the interactions source's columns under recommend.interactions",
            )
        needed = [user, item, at] + ([weight] if weight is not None else [])
        valid = [pc.is_valid(table[c]) for c in needed]
        table = table.filter(functools.reduce(pc.and_, valid))
        user_ids = _ids(table[user])
        item_ids = _ids(table[item])
        if items is not None:
            catalog: pa.Array[Any] = pa.array(sorted({str(i) for i in items}), pa.string())
            known = pc.is_in(item_ids, value_set=catalog)
            table, user_ids, item_ids = (
                table.filter(known),
                user_ids.filter(known),
                item_ids.filter(known),
            )
        else:
            catalog = pc.unique(item_ids).sort()
        users = pc.unique(user_ids).sort()
        if event is None:
            events: tuple[str, ...] = ("",)
            event_codes = np.zeros(table.num_rows, dtype=np.int8)
        else:
            event_ids = cast(
                "pa.Array[Any]", pc.fill_null(_ids(table[event]), pa.scalar("", pa.string()))
            )
            events = tuple(str(e) for e in pc.unique(event_ids).sort().to_pylist())
            if len(events) > _MAX_EVENTS:
                raise SpecError(
                    f"the interactions' {event} column has {len(events)} distinct values, "
                    f"more than {_MAX_EVENTS} event types",
                    fix="name a column of event types (view, cart, purchase...), not of ids",
                )
            event_codes = _codes(event_ids, pa.array(events, pa.string())).astype(np.int8)
        return cls(
            user=_codes(user_ids, users),
            item=_codes(item_ids, catalog),
            at=_micros(table[at], at),
            weight=(
                np.ones(table.num_rows, dtype=np.float32)
                if weight is None
                else _floats(table[weight], weight)
            ),
            event=event_codes,
            users=np.array(users.to_pylist(), dtype=object),
            items=np.array(catalog.to_pylist(), dtype=object),
            events=events,
        )

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @property
    def n_users(self) -> int:
        """How many users have a code."""
        return int(self.users.shape[0])

    @property
    def n_items(self) -> int:
        """How many items have a code (the catalog's size)."""
        return int(self.items.shape[0])

    def matrix(self) -> sp.csr_matrix:
        """Users x items, float32, the weights of repeated (user, item) pairs summed."""
        coo = sp.coo_matrix(
            (self.weight, (self.user, self.item)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix = sp.csr_matrix(coo)
        matrix.sum_duplicates()
        return matrix

    def where(self, mask: NDArray[np.bool_]) -> Interactions:
        """The interactions where ``mask`` is true, with the same vocabularies."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.user.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected {self.user.shape}")
        return Interactions(
            user=self.user[mask],
            item=self.item[mask],
            at=self.at[mask],
            weight=self.weight[mask],
            event=self.event[mask],
            users=self.users,
            items=self.items,
            events=self.events,
        )

    def before(self, at_us: int) -> Interactions:
        """The interactions strictly before ``at_us`` (µs since the epoch, UTC)."""
        return self.where(self.at < np.int64(at_us))

    def user_code(self, user_id: str) -> int:
        """The code of ``user_id``, or -1 when the user has no code."""
        return self._user_codes.get(str(user_id), -1)

    def item_code(self, item_id: str) -> int:
        """The code of ``item_id``, or -1 when the item has no code."""
        return self._item_codes.get(str(item_id), -1)

    @functools.cached_property
    def _user_codes(self) -> dict[str, int]:
        return {str(u): code for code, u in enumerate(self.users.tolist())}

    @functools.cached_property
    def _item_codes(self) -> dict[str, int]:
        return {str(i): code for code, i in enumerate(self.items.tolist())}


def _ids(column: pa.ChunkedArray[Any]) -> pa.Array[Any]:
    """The column's values as strings, ``str()`` of each value (nulls stay null)."""
    array: pa.Array[Any] = column.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.cast(cast("pa.DictionaryType[Any, Any]", array.type).value_type)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.cast(pa.string())
    if pa.types.is_integer(array.type):
        return pc.cast(array, pa.string())
    return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())


def _codes(ids: pa.Array[Any], vocabulary: pa.Array[Any]) -> NDArray[np.int32]:
    codes = pc.index_in(ids, value_set=vocabulary)
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int32)


def _micros(column: pa.ChunkedArray[Any], name: str) -> NDArray[np.int64]:
    array = column.combine_chunks()
    kind = array.type
    if pa.types.is_date(kind):
        array = array.cast(pa.timestamp("s")).cast(pa.timestamp("us"))
    elif pa.types.is_timestamp(kind):
        array = array.cast(pa.timestamp("us", tz=kind.tz))
    else:
        raise SpecError(
            f"the interactions' time column {name} is {kind}, not a timestamp",
            fix="give the interactions source a timestamp column (or cast it in the source)",
        )
    return np.asarray(array.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(column: pa.ChunkedArray[Any], name: str) -> NDArray[np.float32]:
    array = column.combine_chunks()
    if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
        raise SpecError(
            f"the interactions' weight column {name} is {array.type}, not a number",
            fix="name a numeric weight column (quantity, rating...) or no weight (1 per row)",
        )
    return np.asarray(array.cast(pa.float32()).to_numpy(zero_copy_only=False), dtype=np.float32)
