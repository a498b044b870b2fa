"""The stream consumer's journal: the event ids applied, and the batch being applied.

A small SQLite file beside the online store (``<state>/streams.sqlite``), written with
``synchronous=FULL``. Per source it holds:

- ``stream_applied``: every applied event id with its JetStream sequence (what makes a
  redelivered or re-published event a no-op);
- ``stream_batches``: the number of the last batch applied (batches are numbered 1, 2, ...:
  the number is the batch's Delta application-transaction version in the history);
- ``stream_batch_pending`` / ``stream_pre``: the batch being applied, if any: its number, its
  events (Arrow IPC), their ids and, per tile it touches, the tile's state before the batch
  and the length of its events' JSON list then (None: no tile). A batch only appends to a
  tile's list, so that length is the pre-image's list: the tile is restored by truncation,
  and what the journal writes per batch grows with the batch, not with its tiles' events.
  They are committed before the first tile write and deleted in the same transaction that
  records the batch's ids, so after a crash a pending batch is *finished*: the tiles
  restored to their pre-images and the batch applied again from the journal, its history
  appended unless the history already records its number.

>>> import tempfile, pathlib
>>> journal = StreamJournal(pathlib.Path(tempfile.mkdtemp()) / "streams.sqlite")
>>> undo = [("v", "e", "7", 0, None, None), ("v", "e", "8", 0, b"[2]", 9)]
>>> journal.begin("orders", 1, b"ipc", [("a", 1), ("b", 2)], undo)
>>> journal.pending("orders").undo == undo
True
>>> journal.commit("orders", [("a", 1), ("b", 2)])
>>> journal.pending("orders"), sorted(journal.applied("orders", ["a", "c"]))
(None, ['a'])
>>> journal.last_batch("orders"), journal.last_batch("other")
(1, 0)
>>> journal.close()
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import orjson

from taxiway.errors import FeatureError

__all__ = ["Pending", "StreamJournal", "UndoTile"]

# (view, entity, key, tile, the tile's state before the batch and the length of its events'
# JSON list then; both None when it had no tile)
UndoTile = tuple[str, str, str, int, bytes | None, int | None]


class Pending(NamedTuple):
    """A batch begun and not committed: its number, events (Arrow IPC), ids, and its tiles'
    pre-images (state and events' length)."""

    batch: int
    events: bytes
    ids: list[tuple[str, int]]
    undo: list[UndoTile]


SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_applied (
    source TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_batches (source TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stream_batch_pending (
    source TEXT PRIMARY KEY, batch INTEGER NOT NULL, events BLOB NOT NULL, ids BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_pre (
    source TEXT NOT NULL, view TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL,
    tile INTEGER NOT NULL, state BLOB, length INTEGER,
    PRIMARY KEY (source, view, entity, key, tile)
) WITHOUT ROWID;
"""
CHUNK = 500  # ids per SELECT (under SQLite's 999 variables)


class StreamJournal:
    """The journal file at ``path`` (created on first use); one connection, one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(path, isolation_level=None, timeout=5.0)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.executescript(SCHEMA)
            old = self._con.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'stream_undo'"
            ).fetchone()[0]
            if old and self._con.execute("SELECT count(*) FROM stream_undo").fetchone()[0]:
                raise FeatureError(
                    f"the stream journal {path} holds a batch an earlier taxiway began "
                    "(whole tiles as pre-images, a format this version no longer reads)",
                    fix="finish it with the taxiway that began it (start its consumer once), "
                    "or rebuild the tiles with `taxiway features materialize`",
                )
            self._con.execute("DROP TABLE IF EXISTS stream_undo")
        except sqlite3.Error as error:
            raise FeatureError(
                f"cannot open the stream journal {path}: {error}",
                fix="check that the state folder is writable and not on a network drive",
            ) from None

    def __repr__(self) -> str:
        return f"StreamJournal({str(self.path)!r})"

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
                f"cannot write the stream journal {self.path}: {error}",
                fix="check the disk has room and no other consumer runs on this state folder",
            ) from None

    def applied(self, source: str, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` already applied for ``source``."""
        found: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = self._con.execute(
                "SELECT event_id FROM stream_applied WHERE source = ? AND event_id IN "  # nosec B608
                f"({','.join('?' * len(chunk))})",
                [source, *chunk],
            )
            found.update(row[0] for row in rows)
        return found

    def last_batch(self, source: str) -> int:
        """The number of the last batch of ``source`` committed (0 before the first)."""
        row = self._con.execute(
            "SELECT last FROM stream_batches WHERE source = ?", (source,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def begin(
        self,
        source: str,
        batch: int,
        events: bytes,
        ids: Sequence[tuple[str, int]],
        undo: Sequence[UndoTile],
    ) -> None:
        """Record the batch about to be applied: its number, events, ids, tiles' pre-images
        (state and events' length)."""
        with self._transaction() as con:
            con.execute("DELETE FROM stream_pre WHERE source = ?", (source,))
            con.execute(
                "INSERT OR REPLACE INTO stream_batch_pending (source, batch, events, ids) "
                "VALUES (?, ?, ?, ?)",
                (source, batch, events, orjson.dumps([list(pair) for pair in ids])),
            )
            con.executemany(
                "INSERT INTO stream_pre (source, view, entity, key, tile, state, length) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(source, *row) for row in undo],
            )

    def pending(self, source: str) -> Pending | None:
        """The batch of ``source`` begun and neither committed nor discarded, if any."""
        row = self._con.execute(
            "SELECT batch, events, ids FROM stream_batch_pending WHERE source = ?", (source,)
        ).fetchone()
        if row is None:
            return None
        undo = self._con.execute(
            "SELECT view, entity, key, tile, state, length FROM stream_pre WHERE source = ? "
            "ORDER BY view, entity, key, tile",
            (source,),
        ).fetchall()
        ids = [(str(i), int(q)) for i, q in orjson.loads(row[2])]
        return Pending(
            int(row[0]),
            bytes(row[1]),
            ids,
            [
                (v, e, k, int(t), None if s is None else bytes(s), None if n is None else int(n))
                for v, e, k, t, s, n in undo
            ],
        )

    def commit(self, source: str, ids: Sequence[tuple[str, int]]) -> None:
        """Record ``(event id, stream sequence)`` as applied, the pending batch's number as
        the last, and end the pending batch, in one transaction."""
        with self._transaction() as con:
            con.executemany(
                "INSERT OR IGNORE INTO stream_applied (source, event_id, seq) VALUES (?, ?, ?)",
                [(source, event_id, seq) for event_id, seq in ids],
            )
            con.execute(
                "INSERT OR REPLACE INTO stream_batches (source, last) SELECT source, batch "
                "FROM stream_batch_pending WHERE source = ?",
                (source,),
            )
            self._end(con, source)

    def discard(self, source: str) -> None:
        """End the pending batch without recording it."""
        with self._transaction() as con:
            self._end(con, source)

    @staticmethod
    def _end(con: sqlite3.Connection, source: str) -> None:
        con.execute("DELETE FROM stream_batch_pending WHERE source = ?", (source,))
        con.execute("DELETE FROM stream_pre WHERE source = ?", (source,))

    def close(self) -> None:
        self._con.close()
