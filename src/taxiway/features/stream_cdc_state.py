"""What the CDC consumer keeps between batches: each source's applied position, its rows, and
which online values a batch left to recompute.

Kept in the stream journal's SQLite file (``<state>/streams.sqlite``, ``synchronous=FULL``),
per ``cdc: true`` source:

- ``cdc_position``: the LSN where the last applied transaction's commit ends; a restart
  streams from there and skips every transaction ending at or before it;
- ``cdc_rows``: the table's rows as captured (key → the row's text values): an update's or a
  delete's previous row comes from here (pgoutput sends only the key of a deleted row);
- ``cdc_index``: per online view, which rows fall in each (entity key, tile) (tile 0 for
  latest and static views, each row ranked by its timestamp; a tiled view's entry holds the
  row's event), so a changed tile is recomputed from its events and a changed latest value
  from the key's newest row;
- ``cdc_dirty``: the (view, key, tile) a committed batch changed and the online store has not
  been given yet.

:meth:`CdcState.apply` records a batch's rows, index, dirty set and position in ONE
transaction: the online values are recomputed from the rows afterwards, and a crash before
that finishes leaves the dirty set for the next start to recompute.

>>> import tempfile, pathlib
>>> state = CdcState(pathlib.Path(tempfile.mkdtemp()) / "streams.sqlite")
>>> state.apply("orders", 40, {'["1"]': {"id": "1"}}, [("v", "7", 0, '["1"]', 0, 0, b"")], [],
...             {("v", "7", 0)})
>>> state.position("orders"), state.dirty("orders")
(40, [('v', '7', 0)])
>>> state.dirty_rows("orders", newest=["v"])
{('v', '7', 0): [{'id': '1'}]}
>>> state.close()
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from taxiway.errors import FeatureError

__all__ = ["CdcState", "IndexEntry"]

# (view, entity key, tile, row key, rank, tie rank, event): a latest view's newest row has the
# highest (rank, tie rank, row key): its timestamp and `created` in epoch microseconds (0 for
# tiles); a tiled view's entry holds the row's tile event (JSON; empty for latest views)
IndexEntry = tuple[str, str, int, str, int, int, bytes]
CHUNK = 400
_HIGHEST = 2**63 - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS cdc_position (source TEXT PRIMARY KEY, lsn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cdc_rows (
    source TEXT NOT NULL, pk TEXT NOT NULL, row BLOB NOT NULL, PRIMARY KEY (source, pk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cdc_index (
    source TEXT NOT NULL, view TEXT NOT NULL, key TEXT NOT NULL, tile INTEGER NOT NULL,
    pk TEXT NOT NULL, rank INTEGER NOT NULL, tie INTEGER NOT NULL, event BLOB NOT NULL,
    PRIMARY KEY (source, view, key, tile, pk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cdc_dirty (
    source TEXT NOT NULL, view TEXT NOT NULL, key TEXT NOT NULL, tile INTEGER NOT NULL,
    PRIMARY KEY (source, view, key, tile)
) WITHOUT ROWID;
"""


class CdcState:
    """The CDC tables of the journal file at ``path``; one connection, one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(path, isolation_level=None, timeout=5.0)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise FeatureError(
                f"cannot open the CDC state {path}: {error}",
                fix="check that the state folder is writable and not on a network drive",
            ) from None

    def __repr__(self) -> str:
        return f"CdcState({str(self.path)!r})"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
        except sqlite3.Error as error:
            raise FeatureError(
                f"cannot write the CDC state {self.path}: {error}",
                fix="check the disk has room and no other consumer runs on this state folder",
            ) from None

    def position(self, source: str) -> int | None:
        """The LSN the last applied transaction of ``source`` ends at (None: no snapshot yet)."""
        row = self._con.execute(
            "SELECT lsn FROM cdc_position WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else int(row[0])

    def rows(self, source: str, pks: Collection[str]) -> dict[str, dict[str, Any]]:
        """The stored rows among ``pks``."""
        found: dict[str, dict[str, Any]] = {}
        listed = list(pks)
        for start in range(0, len(listed), CHUNK):
            chunk = listed[start : start + CHUNK]
            for pk, row in self._con.execute(
                f"SELECT pk, row FROM cdc_rows WHERE source = ? AND pk IN "  # nosec B608
                f"({','.join('?' * len(chunk))})",
                [source, *chunk],
            ):
                found[str(pk)] = orjson.loads(row)
        return found

    def count(self, source: str) -> int:
        """How many rows of ``source`` are stored."""
        row = self._con.execute(
            "SELECT count(*) FROM cdc_rows WHERE source = ?", (source,)
        ).fetchone()
        return int(row[0])

    def apply(
        self,
        source: str,
        lsn: int,
        rows: Mapping[str, dict[str, Any] | None],
        added: Sequence[IndexEntry],
        removed: Sequence[IndexEntry],
        dirty: Collection[tuple[str, str, int]],
        *,
        reset: bool = False,
    ) -> None:
        """Store a batch in one transaction: ``rows`` (key → row, None: deleted), the index
        entries ``added`` and ``removed``, the ``dirty`` values, and ``lsn`` as the position.
        ``reset`` first forgets every row of ``source`` (a new snapshot), marking every value
        they gave as dirty."""
        with self._transaction() as con:
            if reset:  # every value the old rows gave is recomputed (nulls where none is left)
                con.execute(
                    "INSERT OR IGNORE INTO cdc_dirty (source, view, key, tile) "
                    "SELECT DISTINCT source, view, key, tile FROM cdc_index WHERE source = ?",
                    (source,),
                )
                for table in ("cdc_rows", "cdc_index", "cdc_position"):
                    con.execute(f"DELETE FROM {table} WHERE source = ?", (source,))  # nosec B608
            con.executemany(
                "DELETE FROM cdc_index WHERE source = ? AND view = ? AND key = ? AND tile = ? "
                "AND pk = ?",
                [(source, *entry[:4]) for entry in removed],
            )
            con.executemany(
                "INSERT OR REPLACE INTO cdc_index (source, view, key, tile, pk, rank, tie, event) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(source, *entry) for entry in added],
            )
            con.executemany(
                "DELETE FROM cdc_rows WHERE source = ? AND pk = ?",
                [(source, pk) for pk, row in rows.items() if row is None],
            )
            con.executemany(
                "INSERT OR REPLACE INTO cdc_rows (source, pk, row) VALUES (?, ?, ?)",
                [(source, pk, orjson.dumps(row)) for pk, row in rows.items() if row is not None],
            )
            con.executemany(
                "INSERT OR IGNORE INTO cdc_dirty (source, view, key, tile) VALUES (?, ?, ?, ?)",
                [(source, *entry) for entry in dirty],
            )
            con.execute(
                "INSERT OR REPLACE INTO cdc_position (source, lsn) VALUES (?, ?)", (source, lsn)
            )

    def dirty(self, source: str) -> list[tuple[str, str, int]]:
        """The (view, key, tile) committed but not yet given to the online store."""
        return [
            (str(v), str(k), int(t))
            for v, k, t in self._con.execute(
                "SELECT view, key, tile FROM cdc_dirty WHERE source = ? ORDER BY view, key, tile",
                (source,),
            )
        ]

    def clean(self, source: str) -> None:
        """Forget the dirty set (the online store has every value of it).

        Committed without waiting for the disk (``synchronous=NORMAL``: one fsync less per
        batch): a power cut may bring the dirty set back, and recomputing it is harmless (the
        values come from the stored rows, so twice is the same as once)."""
        self._con.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._transaction() as con:
                con.execute("DELETE FROM cdc_dirty WHERE source = ?", (source,))
        finally:
            self._con.execute("PRAGMA synchronous=FULL")

    def dirty_rows(
        self, source: str, *, newest: Collection[str] = (), known_by: int | None = None
    ) -> dict[tuple[str, str, int], list[Any]]:
        """Each dirty (view, key, tile) with the events of its rows (an empty list: none
        left); for the views in ``newest``, the newest row itself (the highest rank; with
        ``known_by``, the highest rank at or below it: the newest row known by then). Two
        queries."""
        found: dict[tuple[str, str, int], list[Any]] = {entry: [] for entry in self.dirty(source)}
        # the events of the tiles; the newest row of the latest values (an index range scan)
        every = (
            "SELECT d.view, d.key, d.tile, i.event FROM cdc_dirty d JOIN cdc_index i "
            "ON i.source = d.source AND i.view = d.view AND i.key = d.key AND i.tile = d.tile "
            "WHERE d.source = :source AND d.view NOT IN (SELECT value FROM json_each(:views)) "
            "ORDER BY d.view, d.key, d.tile, i.pk"
        )
        # the newest row's key first, then its one row (joining the rows inside the subquery
        # read every candidate's row: 5-9x slower)
        best = (
            "SELECT d.view, d.key, d.tile, r.row FROM cdc_dirty d LEFT JOIN cdc_rows r "
            "ON r.source = d.source AND r.pk = (SELECT i.pk FROM cdc_index i "
            "WHERE i.source = d.source AND i.view = d.view AND i.key = d.key "
            "AND i.tile = d.tile AND i.rank <= :known "
            "ORDER BY i.rank DESC, i.tie DESC, i.pk DESC LIMIT 1) "
            "WHERE d.source = :source AND d.view IN (SELECT value FROM json_each(:views))"
        )
        args = {
            "source": source,
            "views": orjson.dumps(sorted(newest)).decode(),
            "known": _HIGHEST if known_by is None else known_by,
        }
        for query in (every, best):
            for view, key, tile, row in self._con.execute(query, args):
                if row is not None:
                    found[(str(view), str(key), int(tile))].append(orjson.loads(row))
        return found

    def mark(self, source: str, dirty: Collection[tuple[str, str, int]]) -> None:
        """Add ``dirty`` (view, key, tile) to the values to recompute."""
        with self._transaction() as con:
            con.executemany(
                "INSERT OR IGNORE INTO cdc_dirty (source, view, key, tile) VALUES (?, ?, ?, ?)",
                [(source, *entry) for entry in dirty],
            )

    def pending(
        self, source: str, views: Collection[str], after: int
    ) -> list[tuple[str, str, int]]:
        """(view, key, lowest rank above ``after``) of each key of ``views`` with a row ranked
        above ``after`` (a latest value whose newer row is not known yet). One scan."""
        return [
            (str(v), str(k), int(r))
            for v, k, r in self._con.execute(
                "SELECT view, key, min(rank) FROM cdc_index WHERE source = ? AND rank > ? "
                "AND view IN (SELECT value FROM json_each(?)) GROUP BY view, key",
                (source, after, orjson.dumps(sorted(views)).decode()),
            )
        ]

    def close(self) -> None:
        self._con.close()
