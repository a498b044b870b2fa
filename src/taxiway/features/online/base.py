"""The online store protocol: feature vectors by entity key, written in bulk, read in one trip.

A store keeps, for each entity key and feature view, the view's values as of their last
materialization, the event time they come from, and when they were computed. Whether a value
is fresh, stale or missing is decided above the store (``taxiway.features.lookup``), the same
way for every backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = ["AsyncReader", "OnlineStore", "TileRange", "TileTable", "ViewValues"]


class ViewValues(NamedTuple):
    """One feature view's values for one entity key.

    ``values`` maps feature names (``<view>__<feature>``) to JSON-able scalars (None, bool, int,
    float, str); ``event_time`` is when the newest fact behind them happened (None when not
    time-stamped, e.g. static views); ``as_of`` is the time they were computed for. Datetimes
    are timezone-aware UTC.

    A named tuple, not a dataclass: a lookup of 100 keys builds 500 of them, and a tuple is
    built in a fraction of a frozen dataclass's time (and is as immutable).
    """

    view: str
    values: dict[str, Any]
    event_time: datetime | None
    as_of: datetime


@runtime_checkable
class OnlineStore(Protocol):
    """A key-value store of feature vectors. Implementations: sqlite (default), redis."""

    def write(self, entity: str, rows: Iterable[tuple[str, ViewValues]]) -> int:
        """Upsert ``(key, values)`` pairs of ``entity``; return how many were written.

        Writing a view for a key replaces that view's previous values for the key only.
        """
        ...

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """Every stored view of each key, in ONE round trip; keys never written are absent."""
        ...

    def clear(self, entity: str | None = None) -> None:
        """Delete everything of ``entity`` (or of every entity) in this store's namespace."""
        ...

    def forget(self, entity: str, keys: Sequence[str]) -> int:
        """Delete ``keys`` of ``entity``: their vectors and time tiles (the right to erasure);
        return how many of them held anything (keys never written count nothing)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class AsyncReader(Protocol):
    """A store that can also read on the caller's event loop (redis), with no thread hop.

    The prediction service uses it when present: a network read awaited on the loop costs a
    fraction of one handed to a worker thread and back.
    """

    async def aread(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """:meth:`OnlineStore.read`, awaited on the running event loop."""
        ...

    async def aclose(self) -> None:
        """Release the connections :meth:`aread` opened (on the loop that opened them)."""
        ...


class TileRange(NamedTuple):
    """The tiles of one view a read needs: states of tiles ``first`` to ``last`` (inclusive),
    and the events of the ``edges`` (see :mod:`taxiway.features.tiles`)."""

    view: str
    first: int
    last: int
    edges: tuple[int, ...]


# one view of one key as a tile read returns it: (tile → state, edge tile → events), JSON bytes
TileRead = tuple[dict[int, bytes], dict[int, bytes]]


@runtime_checkable
class TileTable(Protocol):
    """A store's time tiles of tiled aggregate views (``store.tiles``): per entity key, view
    and tile index, the tile's state and its events, both opaque JSON bytes here (their
    meaning is :mod:`taxiway.features.tiles`'s). Implementations: sqlite, redis."""

    def read(
        self, entity: str, keys: Sequence[str], ranges: Sequence[TileRange]
    ) -> dict[str, dict[str, TileRead]]:
        """Key → view → its tiles in ``ranges``, in ONE round trip; keys or views without a
        tile in range are absent."""
        ...

    def events(
        self, entity: str, view: str, tiles: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        """The stored events of each ``(key, tile)`` (absent when the tile is not stored)."""
        ...

    def stored(
        self, entity: str, view: str, tiles: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[bytes, bytes]]:
        """The stored ``(state, events)`` of each ``(key, tile)`` (absent when not stored):
        what a write adding events to those tiles starts from."""
        ...

    def put(self, entity: str, view: str, tiles: Iterable[tuple[str, int, bytes, bytes]]) -> int:
        """Write ``(key, tile, state, events)`` rows, replacing those tiles; return the count."""
        ...

    def clear(self, entity: str, view: str | None = None) -> None:
        """Delete the tiles of ``view`` of ``entity`` (of every view when None)."""
        ...
