"""Change data capture from one PostgreSQL table: a consistent snapshot, then its changes.

A ``cdc: true`` postgres source is captured through a logical replication slot (``pgoutput``)
and a publication of its table (psycopg2's replication protocol: psycopg 3 has none):

1. :meth:`PostgresCdc.check` refuses a table whose updates and deletes cannot be told apart
   (no primary key under the default replica identity, or ``REPLICA IDENTITY NOTHING``), with
   the ``ALTER TABLE ... REPLICA IDENTITY`` fix; ``wal_level`` must be ``logical``;
2. :meth:`PostgresCdc.snapshot` creates the slot with ``EXPORT_SNAPSHOT`` and, before the
   replication connection runs anything else, reads the table in that exported snapshot
   (``SET TRANSACTION SNAPSHOT``): the rows as of the slot's consistent point, so the snapshot
   plus the changes streamed from that point have no gap and no overlap;
3. :meth:`PostgresCdc.start` streams the changes committed after a given LSN, and
   :meth:`PostgresCdc.poll` returns whole transactions (:class:`Transaction`), each with the
   LSN its commit ends at;
4. :meth:`PostgresCdc.confirm` tells the server an LSN is applied (it may then recycle the WAL
   before it). The caller confirms only what it has stored, and skips transactions ending at
   or before what it stored (the server may resend them after a restart).

:meth:`PostgresCdc.lag` reports how far a slot is behind (``pg_replication_slots``): WAL the server
retains for it, and ``wal_status`` (``lost`` once ``max_slot_wal_keep_size`` removed WAL it
needed: the slot must then be dropped and the source snapshotted again).
"""

from __future__ import annotations

import contextlib
import math
import re
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from taxiway.data.cdc.pgoutput import Begin, Change, Column, Commit, Relations
from taxiway.errors import SourceError
from taxiway.spec.models import PostgresSource

__all__ = [
    "PostgresCdc",
    "ReplicationLost",
    "SlotLag",
    "TableInfo",
    "Transaction",
    "format_lsn",
    "parse_lsn",
    "slot_name",
]

SESSION = "-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3"
SNAPSHOT_FETCH = 10_000


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` → its 64-bit position.

    >>> parse_lsn("16/B374D848"), format_lsn(parse_lsn("16/B374D848"))
    (97500059720, '16/B374D848')
    """
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    """The inverse of :func:`parse_lsn`."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def slot_name(source: str) -> str:
    """The default slot (and publication) name of a source: ``taxiway_<source>``, folded to
    what PostgreSQL accepts (lower case letters, digits, underscores).

    >>> slot_name("Orders-EU")
    'taxiway_orders_eu'
    """
    return "taxiway_" + re.sub(r"[^a-z0-9_]", "_", source.lower())[:54]


class TableInfo(NamedTuple):
    """A captured table: qualified name, columns ``(name, type OID)``, the key columns (rows'
    identity: primary key, replica identity index, or every column with FULL)."""

    qualified: str
    columns: list[tuple[str, int]]
    key: list[str]
    identity: str


@dataclass
class Transaction:
    """One committed transaction's changes to the table, and where its commit ends."""

    end_lsn: int
    commit_us: int  # microseconds since 2000-01-01 (PostgreSQL's epoch)
    changes: list[Change] = field(default_factory=list)


class SlotLag(NamedTuple):
    """A replication slot's state: the WAL it retains (bytes behind the server's current
    position), how far its confirmed position is behind, whether it is in use, and
    ``wal_status`` (reserved, extended, unreserved, lost)."""

    slot: str
    retained_bytes: int
    confirmed_lag_bytes: int
    active: bool
    wal_status: str


class ReplicationLost(SourceError):
    """The connection to PostgreSQL failed or dropped (a restart, a network cut): starting
    again from the stored position is safe."""


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _psycopg2() -> Any:
    try:
        import psycopg2
        import psycopg2.extras
    except ImportError:
        raise SourceError(
            "change data capture needs psycopg2 (its logical replication protocol)",
            fix="pip install 'taxiway[postgres]'",
        ) from None
    return psycopg2


class PostgresCdc:
    """Captures the changes of source ``name`` (a ``cdc: true`` postgres source)."""

    def __init__(self, name: str, spec: PostgresSource, *, slot: str | None = None) -> None:
        if spec.table is None:
            raise SourceError(
                f"source `{name}`: change data capture needs `table:` (a query has no changes "
                "to stream)",
                fix="name the table with `table:`, or remove `cdc: true`",
            )
        self.name = name
        self.spec = spec
        self.slot = slot or spec.slot or slot_name(name)
        self.publication = self.slot
        self._pg = _psycopg2()
        self._replication: Any = None
        self._cursor: Any = None
        self._relations = Relations()
        self._open: Transaction | None = None
        self.info: TableInfo | None = None

    def __repr__(self) -> str:
        return f"PostgresCdc({self.name!r}, slot={self.slot!r})"

    # ------------------------------------------------------------------ connections

    def _connect(self, *, replication: bool = False) -> Any:
        pg = self._pg
        timeout = max(1, math.ceil(self.spec.connect_timeout_s))
        extra: dict[str, Any] = {"options": SESSION, "connect_timeout": timeout}
        if replication:
            extra["connection_factory"] = pg.extras.LogicalReplicationConnection
        try:
            return pg.connect(self.spec.url.reveal(), **extra)
        except pg.OperationalError as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else "refused"
            raise ReplicationLost(
                f"source `{self.name}`: cannot connect to PostgreSQL at {self.spec.url}: {first}",
                fix="check that PostgreSQL runs and `url:` is right (the role needs the "
                "REPLICATION attribute, or to be a superuser, for change data capture)",
            ) from None

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        con = self._connect()
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall()) if cur.description else []
        except self._pg.OperationalError as error:
            raise ReplicationLost(
                f"source `{self.name}`: PostgreSQL: {str(error).strip()}",
                fix="check the PostgreSQL server",
            ) from None
        finally:
            con.close()

    # ------------------------------------------------------------------ checks

    def check(self) -> TableInfo:
        """The table's columns and key; :class:`SourceError` with the fix when its changes
        cannot be captured (wal_level, missing table, no key)."""
        assert self.spec.table is not None  # nosec B101
        # the postgres extra (ADBC) is needed by CDC only: `features stream` on nats runs without
        from taxiway.data.sources.postgres import split_table

        schema, table = split_table(self.spec.table)
        qualified = f"{_identifier(schema)}.{_identifier(table)}" if schema else _identifier(table)
        (level,) = self._query("SHOW wal_level")[0]
        if level != "logical":
            raise SourceError(
                f"source `{self.name}`: PostgreSQL runs with wal_level={level}; change data "
                "capture needs logical decoding",
                fix="set `wal_level = logical` in postgresql.conf (ALTER SYSTEM SET wal_level = "
                "logical) and restart PostgreSQL",
            )
        found = self._query(
            "SELECT c.oid, c.relreplident, format('%%I.%%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (qualified,),
        )
        if not found:
            raise SourceError(
                f"source `{self.name}`: table {self.spec.table} does not exist",
                fix="create it, or fix `table:` (names are case-sensitive as written)",
            )
        oid, identity, full = found[0]
        columns = [
            (str(n), int(t))
            for n, t in self._query(
                "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                (oid,),
            )
        ]
        primary = self._index_columns(oid, "indisprimary")
        if identity == "i":
            key = self._index_columns(oid, "indisreplident")
        elif identity == "f":
            key = primary or [c for c, _ in columns]
        elif identity == "d" and primary:
            key = primary
        else:
            why = "REPLICA IDENTITY NOTHING" if identity == "n" else "no primary key"
            raise SourceError(
                f"source `{self.name}`: table {full} has {why}, so its updates and deletes "
                "do not say which row they change",
                fix=f"add a primary key, or run `ALTER TABLE {full} REPLICA IDENTITY FULL` "
                f"(or `REPLICA IDENTITY USING INDEX <a unique index>`)",
            )
        self.info = TableInfo(full, columns, key, identity)
        return self.info

    def _index_columns(self, oid: int, which: str) -> list[str]:
        rows = self._query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "  # nosec B608
            f"AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.{which} "
            "ORDER BY array_position(i.indkey, a.attnum)",
            (oid,),
        )
        return [str(r[0]) for r in rows]

    # ------------------------------------------------------------------ slot

    def slot_exists(self) -> bool:
        return bool(
            self._query("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
        )

    def drop(self) -> None:
        """Drop the slot and the publication (if present): the server frees the WAL kept."""
        if self.slot_exists():
            self._query("SELECT pg_drop_replication_slot(%s)", (self.slot,))
        self._query(f"DROP PUBLICATION IF EXISTS {_identifier(self.publication)}")

    def _ensure_publication(self) -> None:
        assert self.info is not None  # nosec B101
        found = self._query("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,))
        if not found:
            self._query(
                f"CREATE PUBLICATION {_identifier(self.publication)} FOR TABLE {self.info.qualified}"
            )

    def snapshot(self) -> tuple[int, Iterator[list[dict[str, Any]]]]:
        """Create the slot (dropping a stale one) and read the table as of its consistent
        point: ``(that LSN, batches of rows as text)``. Stream from that LSN next."""
        info = self.info or self.check()
        self._ensure_publication()
        if self.slot_exists():
            self._query("SELECT pg_drop_replication_slot(%s)", (self.slot,))
        self.close()
        self._replication = self._connect(replication=True)
        self._cursor = self._replication.cursor()
        self._cursor.execute(
            f"CREATE_REPLICATION_SLOT {_identifier(self.slot)} LOGICAL pgoutput EXPORT_SNAPSHOT"
        )
        _, consistent, exported, _ = self._cursor.fetchone()
        # the exported snapshot lives until the replication connection runs its next command
        reader = self._connect()
        reader.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with reader.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (exported,))
        select_list = ", ".join(f"{_identifier(c)}::text" for c, _ in info.columns)
        rows = reader.cursor(name=f"taxiway_snapshot_{self.slot}")
        rows.itersize = SNAPSHOT_FETCH
        rows.execute(f"SELECT {select_list} FROM {info.qualified}")  # nosec B608
        names = [c for c, _ in info.columns]

        def batches() -> Iterator[list[dict[str, Any]]]:
            try:
                while True:
                    chunk = rows.fetchmany(SNAPSHOT_FETCH)
                    if not chunk:
                        break
                    yield [dict(zip(names, row, strict=True)) for row in chunk]
            finally:
                rows.close()
                reader.rollback()
                reader.close()

        return parse_lsn(consistent), batches()

    # ------------------------------------------------------------------ streaming

    def start(self, lsn: int) -> None:
        """Stream the changes committed after ``lsn``, or after the slot's confirmed position
        when that is later (0: from the confirmed position)."""
        info = self.info or self.check()
        self._ensure_publication()
        if self._replication is None:
            self._replication = self._connect(replication=True)
            self._cursor = self._replication.cursor()
        try:
            self._cursor.start_replication(
                slot_name=self.slot,
                decode=False,
                start_lsn=lsn,
                options={"proto_version": "1", "publication_names": self.publication},
            )
        except self._pg.Error as error:
            first = str(error).strip().splitlines()[0]
            raise SourceError(
                f"source `{self.name}`: cannot stream slot {self.slot}: {first}",
                fix="if the slot is gone or lost (pg_replication_slots.wal_status), delete the "
                f"source's CDC state (`taxiway features stream` snapshots {info.qualified} again)",
            ) from None
        self._relations = Relations()
        self._open = None

    def fileno(self) -> int:
        return int(self._replication.fileno())

    def poll(self, *, max_changes: int, wait_s: float) -> list[Transaction]:
        """The whole transactions received, up to about ``max_changes`` changes, waiting at
        most ``wait_s`` for the first message; an open transaction is kept for the next call."""
        done: list[Transaction] = []
        count = 0
        deadline = time.monotonic() + wait_s
        while count < max_changes:
            try:
                message = self._cursor.read_message()
            except self._pg.Error as error:
                raise ReplicationLost(
                    f"source `{self.name}`: replication stopped: {str(error).strip()}",
                    fix="check the PostgreSQL server; restarting `taxiway features stream` "
                    "resumes from the last applied change",
                ) from None
            if message is None:
                left = deadline - time.monotonic()
                if done or left <= 0:
                    break
                select.select([self._replication], [], [], min(left, 0.2))
                continue
            decoded = self._relations.decode(message.payload)
            if isinstance(decoded, Begin):
                self._open = Transaction(end_lsn=0, commit_us=decoded.commit_us)
            elif isinstance(decoded, Commit):
                if self._open is not None:
                    self._open.end_lsn = decoded.end_lsn
                    done.append(self._open)
                    count += len(self._open.changes)
                self._open = None
            elif isinstance(decoded, Change) and self._open is not None:
                self._open.changes.append(decoded)
        return done

    def columns(self) -> list[Column]:
        """The table's columns as the stream last described them (empty before)."""
        for relation in self._relations.known.values():
            return list(relation.columns)
        return []

    def confirm(self, lsn: int) -> None:
        """Tell the server every change up to ``lsn`` is stored (it may recycle that WAL)."""
        try:
            self._cursor.send_feedback(write_lsn=lsn, flush_lsn=lsn, reply=True)
        except self._pg.Error as error:
            raise ReplicationLost(
                f"source `{self.name}`: replication stopped: {str(error).strip()}",
                fix="check the PostgreSQL server; the position is confirmed again on restart",
            ) from None

    def lag(self) -> SlotLag | None:
        """How far this source's slot is behind, from ``pg_replication_slots`` (None when it
        has no slot)."""
        rows = self._query(
            "SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, active, "
            "coalesce(wal_status, 'unknown') FROM pg_replication_slots WHERE slot_name = %s",
            (self.slot,),
        )
        if not rows:
            return None
        name, retained, lag, active, status = rows[0]
        return SlotLag(str(name), int(retained or 0), int(lag or 0), bool(active), str(status))

    def close(self) -> None:
        if self._replication is not None:
            with contextlib.suppress(self._pg.Error):
                self._replication.close()
        self._replication = self._cursor = None
