"""The embedded online store: feature vectors in one SQLite file, the default backend.

One table holds every entity, key and view (``WITHOUT ROWID``, keyed by ``(entity, key,
view)``), so a lookup is one index range per key and a write is one upsert per row. The file
is in WAL mode: readers never wait for a writer and the server can read while materialization
writes. ``synchronous=NORMAL`` may lose the last commits on power loss (never corrupts): the
online store is rebuilt from the offline one by materialization, so speed wins.

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

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from taxiway.errors import FeatureError
from taxiway.features.online._codec import Moments, check_entity, decode, encode_values, to_epoch
from taxiway.features.online.base import ViewValues

__all__ = ["SqliteStore"]

_TABLE = "online_features"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    view TEXT NOT NULL,
    payload BLOB NOT NULL,
    event_time REAL,
    as_of REAL NOT NULL,
    PRIMARY KEY (entity, key, view)
) WITHOUT ROWID
"""
_UPSERT = (
    f"INSERT OR REPLACE INTO {_TABLE} (entity, key, view, payload, event_time, as_of) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT = f"SELECT key, view, payload, event_time, as_of FROM {_TABLE} WHERE entity = ? AND key IN "
_BUSY_TIMEOUT_MS = 5_000


class SqliteStore:
    """Feature vectors in the SQLite file ``path`` (created, with its folder, on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._ready = False
        # SQLite's oldest default bound-variable limit, until a connection reports its own
        self._chunk_size = 999

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # ------------------------------------------------------------------ the protocol

    def write(self, entity: str, rows: Iterable[tuple[str, ViewValues]]) -> int:
        """Upsert ``(key, values)`` pairs of ``entity`` in one transaction; return the count.

        Writing a view for a key replaces that view's previous values for the key only. The
        rows are streamed into SQLite, so a generator of millions of rows is never held whole.
        """
        check_entity(entity)
        written = 0

        def records() -> Iterator[tuple[str, str, str, bytes, float | None, float]]:
            nonlocal written
            for key, view in rows:
                event_time = view.event_time
                yield (
                    entity,
                    key,
                    view.view,
                    encode_values(view.values),
                    None if event_time is None else to_epoch(event_time),
                    to_epoch(view.as_of),
                )
                written += 1

        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(_UPSERT, records())
            except BaseException:
                if connection.in_transaction:  # some errors have rolled back already
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error("write to", error) from None
        return written

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """Every stored view of each key (views in name order); keys never written are absent.

        One ``SELECT`` for up to SQLite's bound-variable limit (32,766 keys by default); more
        keys are read in chunks inside one read transaction, so they see one snapshot.
        """
        check_entity(entity)
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        connection = self._connection()
        size = self._chunk_size
        found: dict[str, list[ViewValues]] = {}
        try:
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
        for views in found.values():
            if len(views) > 1:
                views.sort(key=_view_name)
        return found

    def clear(self, entity: str | None = None) -> None:
        """Delete everything of ``entity``, or of every entity when ``entity`` is None."""
        connection = self._connection()
        try:
            if entity is None:
                connection.execute(f"DELETE FROM {_TABLE}")
            else:
                connection.execute(
                    f"DELETE FROM {_TABLE} WHERE entity = ?", (check_entity(entity),)
                )
        except sqlite3.Error as error:
            raise self._error("clear", error) from None

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
        found: dict[str, list[ViewValues]],
    ) -> None:
        sql = _SELECT + "(" + ",".join("?" * len(keys)) + ")"
        moments = Moments()
        for key, view, payload, event_time, as_of in connection.execute(sql, [entity, *keys]):
            values = ViewValues(
                view,
                decode(payload),
                None if event_time is None else moments[event_time],
                moments[as_of],
            )
            views = found.get(key)
            if views is None:
                found[key] = [values]
            else:
                views.append(values)

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
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if not self._ready:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute(_SCHEMA)
                self._ready = True
            connection.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            connection.close()
            raise
        self._chunk_size = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1
        return connection

    def _error(self, action: str, error: sqlite3.Error) -> FeatureError:
        reason = str(error)
        if isinstance(error, sqlite3.OperationalError) and "locked" in reason:
            fix = "another process holds a write lock on it for too long; let it finish"
        elif "readonly" in reason or "unable to open" in reason:
            fix = "point online_store.path (or the state directory) at a writable file"
        elif isinstance(error, sqlite3.DatabaseError) and "not a database" in reason:
            fix = "this file is not an online store; delete it or choose another online_store.path"
        else:
            fix = "check the file's permissions and free disk space"
        return FeatureError(f"cannot {action} the online store {self.path}: {reason}", fix=fix)


def _view_name(values: ViewValues) -> str:
    return values.view
