"""Time tiles in the SQLite online store (``SqliteStore.tiles``).

Layout: table ``feature_tiles`` (``WITHOUT ROWID``), one row per entity, key, view and tile
index, holding the tile's state and its events (JSON), keyed by ``(entity, key, view, tile)``.
A read of one key's windows is then one ``SELECT`` walking that key's contiguous slice of the
primary key per view (a range scan, no separate index) and returning the events column only
for the edge tiles (``CASE``), so a read moves the states of the window's tiles and at most
two tiles' events per view. Rows of this table live beside the ``feature_vectors`` of the
same file and transactions (WAL: reads never wait for a writer).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from itertools import islice

from taxiway.errors import FeatureError
from taxiway.features.online._codec import check_entity
from taxiway.features.online.base import TileRange, TileRead

__all__ = ["SqliteTiles"]

TABLE = "feature_tiles"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    view TEXT NOT NULL,
    tile INTEGER NOT NULL,
    state BLOB NOT NULL,
    events BLOB NOT NULL,
    PRIMARY KEY (entity, key, view, tile)
) WITHOUT ROWID
"""
CHUNK = 400  # (key, tile) pairs per SELECT of stored events (2 variables each, under 999)


class SqliteTiles:
    """The tile table of one SQLite store, on the store's per-thread connections."""

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        writing: Callable[[sqlite3.Connection], AbstractContextManager[None]],
        error: Callable[[str, sqlite3.Error], FeatureError],
    ) -> None:
        self._connection = connection
        self._writing = writing
        self._error = error
        self._ready = False
        self._reads: dict[tuple[int, tuple[int, ...]], str] = {}

    def _con(self) -> sqlite3.Connection:
        connection = self._connection()
        if not self._ready:
            try:
                connection.execute(SCHEMA)
            except sqlite3.Error as error:
                raise self._error("open", error) from None
            self._ready = True
        return connection

    def read(
        self, entity: str, keys: Sequence[str], ranges: Sequence[TileRange]
    ) -> dict[str, dict[str, TileRead]]:
        """Key → view → (tile → state, edge tile → events); one SELECT per key."""
        check_entity(entity)
        sql = self._read_sql(len(ranges), tuple(len(r.edges) for r in ranges))
        edges: list[object] = []
        spans: list[object] = []
        for r in ranges:
            edges += [r.view, *r.edges]
            spans += [r.view, r.first, r.last]
        found: dict[str, dict[str, TileRead]] = {}
        connection = self._con()
        try:
            for key in dict.fromkeys(keys):
                rows = connection.execute(sql, [*edges, entity, key, *spans]).fetchall()
                if not rows:
                    continue
                views: dict[str, TileRead] = {}
                for view, tile, state, events in rows:
                    read = views.get(view)
                    if read is None:
                        read = views[view] = ({}, {})
                    read[0][tile] = state
                    if events is not None:
                        read[1][tile] = events
                found[key] = views
        except sqlite3.Error as error:
            raise self._error("read from", error) from None
        return found

    def _read_sql(self, views: int, edges: tuple[int, ...]) -> str:
        shape = (views, edges)
        sql = self._reads.get(shape)
        if sql is None:
            is_edge = " OR ".join(f"(view = ? AND tile IN ({','.join('?' * n)}))" for n in edges)
            in_range = " OR ".join("(view = ? AND tile BETWEEN ? AND ?)" for _ in range(views))
            sql = self._reads[shape] = (
                f"SELECT view, tile, state, CASE WHEN {is_edge} THEN events END "  # nosec B608
                f"FROM {TABLE} WHERE entity = ? AND key = ? AND ({in_range})"
            )
        return sql

    def events(
        self, entity: str, view: str, tiles: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        """The stored events of each ``(key, tile)`` of ``view``."""
        return {pair: events for pair, (_, events) in self._select(entity, view, tiles).items()}

    def stored(
        self, entity: str, view: str, tiles: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[bytes, bytes]]:
        """The stored ``(state, events)`` of each ``(key, tile)`` of ``view``."""
        return self._select(entity, view, tiles)

    def _select(
        self, entity: str, view: str, tiles: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[bytes, bytes]]:
        check_entity(entity)
        found: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        connection = self._con()
        try:
            for start in range(0, len(tiles), CHUNK):
                chunk = tiles[start : start + CHUNK]
                pairs = ",".join("(?, ?)" for _ in chunk)
                flat = [part for pair in chunk for part in pair]
                rows = connection.execute(
                    f"SELECT key, tile, state, events FROM {TABLE} "  # nosec B608
                    f"WHERE entity = ? AND view = ? AND (key, tile) IN (VALUES {pairs})",
                    [entity, view, *flat],
                )
                for key, tile, state, events in rows:
                    found[(key, tile)] = (state, events)
        except sqlite3.Error as error:
            raise self._error("read from", error) from None
        return found

    def put(self, entity: str, view: str, tiles: Iterable[tuple[str, int, bytes, bytes]]) -> int:
        """Write ``(key, tile, state, events)`` rows in one transaction; return the count."""
        check_entity(entity)
        connection = self._con()
        written = 0
        try:
            with self._writing(connection):
                iterator = iter(tiles)
                while chunk := list(islice(iterator, 1_000)):
                    connection.executemany(
                        f"INSERT OR REPLACE INTO {TABLE} "
                        "(entity, key, view, tile, state, events) VALUES (?, ?, ?, ?, ?, ?)",
                        [(entity, key, view, tile, s, e) for key, tile, s, e in chunk],
                    )
                    written += len(chunk)
        except sqlite3.Error as error:
            raise self._error("write to", error) from None
        return written

    def clear(self, entity: str, view: str | None = None) -> None:
        """Delete ``view``'s tiles of ``entity`` (every view's when None)."""
        check_entity(entity)
        connection = self._con()
        try:
            with self._writing(connection):
                if view is None:
                    connection.execute(f"DELETE FROM {TABLE} WHERE entity = ?", (entity,))  # nosec B608
                else:
                    connection.execute(
                        f"DELETE FROM {TABLE} WHERE entity = ? AND view = ?",  # nosec B608
                        (entity, view),
                    )
        except sqlite3.Error as error:
            raise self._error("clear", error) from None
