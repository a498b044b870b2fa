"""The embedded online store: feature vectors in one SQLite file, the default backend.

Layout: one row per entity key holding every view of the key. The table ``feature_vectors``
(``WITHOUT ROWID``, keyed by ``(entity, key)``) has one JSON column, ``views``:
``{"<view>": {"values": {...}, "event_time": <epoch s | null>, "as_of": <epoch s>}, ...}``,
views in name order; each view's record is what the Redis store keeps in that view's hash
field. A lookup of N keys is ONE indexed ``SELECT ... WHERE entity = ? AND key IN (...)``
returning N rows, one JSON document each. Writing a view replaces that view inside each
key's row (read, merge, write back in one ``BEGIN IMMEDIATE`` transaction, so two writers
never lose each other's views) and leaves the key's other views alone.

Stores written by taxiway before this layout kept one row per key *and view* (table
``online_features``). Such a file is migrated in place, in one transaction, by the first
write (``taxiway features materialize``), which logs how many keys it moved; until then a
read refuses it with a :class:`~taxiway.errors.FeatureError` saying to materialize.

The file is in WAL mode: readers never wait for a writer and the server can read while
materialization writes. Connections map up to the first 1 GiB of the file into memory
(``mmap_size``): a read then finds pages in the operating system's cache without a system
call and a copy per page, about half the time of a 100-key ``SELECT`` through SQLite's default
2 MiB page cache. (A file shortened under a mapped reader by another program can crash the
reader; taxiway never shortens it.) ``synchronous=NORMAL`` may lose the last commits on power loss
(never corrupts): the online store is rebuilt from the offline one by materialization, so
speed wins.

Deadlines: a write waits up to 5 s for another writer's lock. A read waits for a lock only
``read_timeout_ms`` (SQLite's busy timeout) when one is given: the prediction service gives a
tenth of its latency budget, because it reads on its event loop, so a file another
connection holds locked (e.g. opened with ``locking_mode=EXCLUSIVE``) costs a request that
long and then fails over to the fallback, instead of holding every request for 5 s.

Threads: each thread gets its own connection (``threading.local``), opened on first use, so
reads from several serving threads run in parallel (SQLite and :mod:`sqlite3` release the GIL
while they work) without a lock around one shared connection. :meth:`SqliteStore.close`
closes every connection the store opened, from any thread.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> from taxiway.features.online.base import ViewValues
>>> folder = tempfile.TemporaryDirectory()
>>> store = SqliteStore(Path(folder.name) / "online.sqlite")
>>> at = datetime(2025, 1, 6, tzinfo=UTC)
>>> store.write("customer", [("42", ViewValues("orders", {"orders__count": 3}, at, at))])
1
>>> store.read("customer", ["42", "7"])["42"][0].values
{'orders__count': 3}
>>> store.close(); folder.cleanup()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from taxiway.errors import FeatureError
from taxiway.features.online._codec import (
    Moments,
    Records,
    check_entity,
    decode,
    encode_views,
    record,
    to_epoch,
    view_values,
)
from taxiway.features.online.base import ViewValues
from taxiway.features.online.tiles_sqlite import SCHEMA as TILES_SCHEMA
from taxiway.features.online.tiles_sqlite import TABLE as TILES_TABLE
from taxiway.features.online.tiles_sqlite import SqliteTiles

__all__ = ["SqliteStore"]

logger = logging.getLogger("taxiway.features")

_TABLE = "feature_vectors"
_OLD_TABLE = "online_features"  # one row per key and view: the layout before feature_vectors
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    views BLOB NOT NULL,
    PRIMARY KEY (entity, key)
) WITHOUT ROWID
"""
_UPSERT = f"INSERT OR REPLACE INTO {_TABLE} (entity, key, views) VALUES (?, ?, ?)"
_SELECT = f"SELECT key, views FROM {_TABLE} WHERE entity = ? AND key IN "  # nosec B608
_WRITE_BUSY_TIMEOUT_MS = 5_000
MMAP_BYTES = 1 << 30  # how much of the file reads map into memory (address space, not RAM)
WRITE_CHUNK = 500  # rows merged per read-modify-write step (keys per SELECT stay under 999)


class SqliteStore:
    """Feature vectors in the SQLite file ``path`` (created, with its folder, on first use).

    ``read_timeout_ms``: how long a read waits for a lock another connection holds before it
    fails (None: as long as a write, 5 s).
    """

    def __init__(self, path: Path, *, read_timeout_ms: float | None = None) -> None:
        self.path = Path(path)
        self.read_timeout_ms = read_timeout_ms
        self.migrated_keys = 0  # keys moved from the old layout by this store's writes
        self._read_busy_ms = (
            _WRITE_BUSY_TIMEOUT_MS if read_timeout_ms is None else max(1, round(read_timeout_ms))
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._ready = False
        self._old_layout = False
        # SQLite's oldest default bound-variable limit, until a connection reports its own
        self._chunk_size = 999
        self._in_lists: dict[int, str] = {}
        self._tiles: SqliteTiles | None = None

    @property
    def tiles(self) -> SqliteTiles:
        """The time tiles of tiled views, in this file (:mod:`.tiles_sqlite`)."""
        if self._tiles is None:
            self._tiles = SqliteTiles(self._connection, self._writing, self._error)
        return self._tiles

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # ------------------------------------------------------------------ the protocol

    def write(self, entity: str, rows: Iterable[tuple[str, ViewValues]]) -> int:
        """Upsert ``(key, values)`` pairs of ``entity`` in one transaction; return the count.

        Writing a view for a key replaces that view's previous values for the key only. The
        rows are streamed into SQLite in steps of :data:`WRITE_CHUNK`, so a generator of
        millions of rows is never held whole.
        """
        check_entity(entity)
        written = 0
        connection = self._connection()
        try:
            with self._writing(connection):
                iterator = iter(rows)
                while chunk := list(islice(iterator, WRITE_CHUNK)):
                    self._merge(connection, entity, chunk)
                    written += len(chunk)
        except sqlite3.Error as error:
            raise self._error("write to", error) from None
        return written

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """Every stored view of each key (views in name order); keys never written are absent.

        One ``SELECT`` for up to SQLite's bound-variable limit (32,766 keys by default); more
        keys are read in chunks inside one read transaction, so they see one snapshot.
        """
        moments = Moments()
        return {
            key: [view_values(view, data, moments) for view, data in records.items()]
            for key, records in self.read_records(entity, keys).items()
        }

    def read_records(self, entity: str, keys: Sequence[str]) -> dict[str, Records]:
        """:meth:`read` as each key's decoded row: ``{view: {"values", "event_time", "as_of"}}``
        with times in epoch seconds (views in name order). What a lookup reads: one JSON
        decode per key, no datetime or :class:`ViewValues` built per view.
        """
        check_entity(entity)
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        connection = self._connection()
        size = self._chunk_size
        found: dict[str, Records] = {}
        try:
            if self._old_layout:
                self._refuse_old_layout(connection)
            if len(wanted) <= size:
                self._select(connection, entity, wanted, found)
            else:
                connection.execute("BEGIN")
                try:
                    for start in range(0, len(wanted), size):
                        self._select(connection, entity, wanted[start : start + size], found)
                finally:
                    if connection.in_transaction:
                        connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error("read from", error) from None
        return found

    def clear(self, entity: str | None = None) -> None:
        """Delete everything of ``entity``, or of every entity when ``entity`` is None."""
        connection = self._connection()
        try:
            with self._writing(connection):
                connection.execute(TILES_SCHEMA)
                if entity is None:
                    connection.execute(f"DELETE FROM {_TABLE}")  # nosec B608
                    connection.execute(f"DELETE FROM {TILES_TABLE}")  # nosec B608
                else:
                    for table in (_TABLE, TILES_TABLE):
                        connection.execute(
                            f"DELETE FROM {table} WHERE entity = ?",  # nosec B608
                            (check_entity(entity),),
                        )
        except sqlite3.Error as error:
            raise self._error("clear", error) from None

    def forget(self, entity: str, keys: Sequence[str]) -> int:
        """Delete ``keys`` of ``entity`` (vectors and tiles) in one transaction; how many of
        them held anything."""
        check_entity(entity)
        wanted = list(dict.fromkeys(keys))
        removed = 0
        connection = self._connection()
        try:
            with self._writing(connection):
                connection.execute(TILES_SCHEMA)
                for key in wanted:
                    rows = 0
                    for table in (_TABLE, TILES_TABLE):
                        # the table names are constants; entity and key are bound parameters
                        sql = f"DELETE FROM {table} WHERE entity = ? AND key = ?"  # nosec B608
                        rows += max(connection.execute(sql, (entity, key)).rowcount, 0)
                    removed += rows > 0
        except sqlite3.Error as error:
            raise self._error("delete from", error) from None
        return removed

    def close(self) -> None:
        """Close every connection this store opened, in any thread; the store is then unusable."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    # ------------------------------------------------------------------ internals

    def _select(
        self,
        connection: sqlite3.Connection,
        entity: str,
        keys: list[str],
        found: dict[str, Records],
    ) -> None:
        for key, views in connection.execute(self._in_list(len(keys)), [entity, *keys]):
            found[key] = decode(views)

    def _in_list(self, count: int) -> str:
        """The SELECT for ``count`` keys (built once per count: the statement cache's key)."""
        sql = self._in_lists.get(count)
        if sql is None:
            sql = self._in_lists[count] = _SELECT + "(" + ",".join("?" * count) + ")"
        return sql

    def _merge(
        self, connection: sqlite3.Connection, entity: str, chunk: list[tuple[str, ViewValues]]
    ) -> None:
        """Write ``chunk``'s views into their keys' rows, keeping the rows' other views."""
        keys = list(dict.fromkeys(key for key, _ in chunk))
        stored: dict[str, dict[str, Any]] = {
            key: decode(views)
            for key, views in connection.execute(self._in_list(len(keys)), [entity, *keys])
        }
        for key, view in chunk:
            records = stored.get(key)
            if records is None:
                records = stored[key] = {}
            event_time = view.event_time
            records[view.view] = record(
                view.values,
                None if event_time is None else to_epoch(event_time),
                to_epoch(view.as_of),
            )
        connection.executemany(
            _UPSERT,
            [(entity, key, encode_views(dict(sorted(stored[key].items())))) for key in keys],
        )

    @contextmanager
    def _writing(self, connection: sqlite3.Connection) -> Iterator[None]:
        """One write transaction (waiting up to 5 s for other writers), the old layout migrated
        first; rolled back on any error."""
        connection.execute(f"PRAGMA busy_timeout = {_WRITE_BUSY_TIMEOUT_MS}")
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                if self._old_layout:
                    self._migrate(connection)
                yield
            except BaseException:
                if connection.in_transaction:  # some errors have rolled back already
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.execute(f"PRAGMA busy_timeout = {self._read_busy_ms}")

    def _has_old_table(self, connection: sqlite3.Connection) -> bool:
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_OLD_TABLE,)
        ).fetchone()
        return found is not None

    def _refuse_old_layout(self, connection: sqlite3.Connection) -> None:
        """Raise unless another process has migrated the old layout since it was seen."""
        if not self._has_old_table(connection):
            self._old_layout = False
            return
        raise FeatureError(
            f"the online store {self.path} has the layout of earlier taxiway versions "
            "(one row per key and view), which this version does not read",
            fix="run `taxiway features materialize`: its first write migrates the file "
            "in place (one row per key), keeping every stored value",
        )

    def _migrate(self, connection: sqlite3.Connection) -> None:
        """Move the old layout's rows into one row per key, then drop the old table.

        Runs inside the caller's write transaction: the file is migrated whole or not at all.
        A key already in the new table keeps its new row.
        """
        if not self._has_old_table(connection):
            self._old_layout = False
            return
        rows = connection.execute(
            f"SELECT entity, key, view, payload, event_time, as_of FROM {_OLD_TABLE} "  # nosec B608
            "ORDER BY entity, key, view"  # the primary key's order: no sort
        ).fetchall()
        merged: list[tuple[str, str, bytes]] = []
        current: tuple[str, str] | None = None
        records: dict[str, Any] = {}
        for entity, key, view, payload, event_time, as_of in rows:
            if (entity, key) != current:
                if current is not None:
                    merged.append((*current, encode_views(records)))
                current, records = (entity, key), {}
            records[view] = record(decode(payload), event_time, as_of)
        if current is not None:
            merged.append((*current, encode_views(records)))
        connection.executemany(
            f"INSERT OR IGNORE INTO {_TABLE} (entity, key, views) VALUES (?, ?, ?)", merged
        )
        connection.execute(f"DROP TABLE {_OLD_TABLE}")
        self._old_layout = False
        self.migrated_keys += len(merged)
        logger.warning(
            "the online store %s had the layout of earlier taxiway versions (one row per key "
            "and view): migrated %d rows into one row per key for %d keys",
            self.path,
            len(rows),
            len(merged),
        )

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema made) on first use."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and not self._closed:
            return connection
        with self._lock:
            if self._closed:
                raise FeatureError(
                    f"the online store {self.path} is closed",
                    fix="open the store again with open_online_store()",
                )
            try:
                connection = self._open()
            except sqlite3.Error as error:
                raise self._error("open", error) from None
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FeatureError(
                f"cannot create the folder of the online store {self.path} ({error.strerror})",
                fix="point online_store.path (or the state directory) at a writable folder",
            ) from None
        # autocommit (isolation_level=None): transactions are begun explicitly, and
        # check_same_thread=False only so close() may close it from another thread.
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {self._read_busy_ms}")
            if not self._ready:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute(_SCHEMA)
                self._old_layout = self._has_old_table(connection)
                self._ready = True
            connection.execute("PRAGMA synchronous = NORMAL")
            # reads map the file instead of copying each page through SQLite's 2 MiB page
            # cache: a lookup of 100 random keys reads ~200 pages (bench/RESULTS.md, section 3)
            connection.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        except BaseException:
            connection.close()
            raise
        self._chunk_size = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1
        return connection

    def _error(self, action: str, error: sqlite3.Error) -> FeatureError:
        reason = str(error)
        if isinstance(error, sqlite3.OperationalError) and "locked" in reason:
            if action in ("read from", "open") and self.read_timeout_ms is not None:
                reason += f" (a read waits at most {self._read_busy_ms} ms for a lock)"
            fix = "another connection holds a lock on the file; find it (`fuser <file>`) and let it finish"
        elif "readonly" in reason or "unable to open" in reason:
            fix = "point online_store.path (or the state directory) at a writable file"
        elif isinstance(error, sqlite3.DatabaseError) and "not a database" in reason:
            fix = "this file is not an online store; delete it or choose another online_store.path"
        else:
            fix = "check the file's permissions and free disk space"
        return FeatureError(f"cannot {action} the online store {self.path}: {reason}", fix=fix)
