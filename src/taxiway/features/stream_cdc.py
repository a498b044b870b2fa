"""``taxiway features stream`` for ``cdc: true`` postgres sources: a table's consistent
snapshot, then its committed changes, applied to the online store and the offline history.

Per source (:class:`~taxiway.data.cdc.postgres.PostgresCdc` reads PostgreSQL), each batch of
whole transactions goes through, in this order:

1. skip every transaction whose commit ends at or before the stored position (the server
   resends what was not confirmed);
2. fold the changes into rows: an insert adds its row, an update replaces its row (a value
   pgoutput left out as an unchanged TOAST value is taken from the stored row), a delete
   removes it; the previous rows come from :class:`~taxiway.features.stream_cdc_state.CdcState`;
3. append the changes to the Delta table at ``history:`` (each row with ``_op``: snapshot,
   insert, update or delete; ``_lsn``: where its transaction's commit ends; ``_committed_at``)
   as application transaction ``(source, last LSN)``, leaving out rows at or before the LSN the
   table already records for the source;
4. store the rows, the (view, key, tile) they enter and leave (with each row's tile event, or
   its rank by timestamp), every (view, key, tile) a changed row was or is in as *dirty*, and
   the batch's last LSN as the position: one SQLite commit;
5. recompute each dirty value from what is stored and write it to the online store: a tiled
   aggregate view's tile (:func:`~taxiway.features.tiles.summarize` of its rows' events), a
   latest view's newest row known now (by timestamp, then ``created``; a row is known from
   its timestamp + ``available_after``, as training reads it), a static view's row; a key
   left with no (known) row gets nulls;
6. forget the dirty set, then confirm the position to PostgreSQL (only now may it recycle
   the WAL).

**The guarantee.** The online values and the history equal the table's committed state, each
change once, across a crash at any point (``kill -9`` included) and a PostgreSQL restart: a
crash before 4 leaves the position before the batch, so the batch comes again (its history
rows, already appended, are left out by their LSN); a crash after 4 leaves the dirty set,
which the next start recomputes (the values are recomputed from rows, so twice is the same as
once). The first start (no position) creates the slot, reads the table in the slot's exported
snapshot, and applies it as one batch (``_op = snapshot``; the history is overwritten, the
views' tiles cleared first). A TRUNCATE of the table is refused with the fix (re-snapshot).

**Rows not known yet.** A latest value whose newest row is not known yet (its timestamp +
``available_after`` is later than now) keeps the newest known row; the consumer keeps those
keys in a timetable (rebuilt from the index at start) and writes each one's newer value when
its row becomes known (:meth:`CdcApplier.promote`, between batches: at most half a second
late when idle, one batch late under load), so the online read at T equals the offline
point-in-time value at T.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from taxiway.data.cdc.pgoutput import UNCHANGED
from taxiway.data.cdc.postgres import (
    PostgresCdc,
    ReplicationLost,
    TableInfo,
    Transaction,
    format_lsn,
)
from taxiway.data.cdc.values import typed_table
from taxiway.data.history import HistoryWriter
from taxiway.errors import SourceError
from taxiway.features.materialize import encode_key, plain_value
from taxiway.features.online._codec import dumps
from taxiway.features.online.base import ViewValues
from taxiway.features.stream_cdc_state import CdcState, IndexEntry
from taxiway.features.tiles import Event, TiledView, events_of, summarize, tile_table
from taxiway.spec.models import (
    AggregateView,
    LatestView,
    PostgresSource,
    StaticView,
    TaxiwaySpec,
)

__all__ = ["CdcApplier", "CdcTotals", "cdc_sources", "consume_cdc"]

logger = logging.getLogger("taxiway.stream")

# at most this many changes per batch (whole transactions): a batch takes what has come, so
# batches grow only under a backlog, where each value a batch recomputes once (a key changed
# many times, a tile's several events) and the per-batch costs (a Delta commit, two fsyncs)
# are shared by more changes: 5,000 -> 20,000 took the drain from 5.2k to 9.7k changes/s
BATCH_CHANGES = 20_000
RETRY_S = 1.0
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ROW = "__tw_row"  # the row's index in a batch table, carried through events_of
Row = dict[str, Any]


def cdc_sources(spec: TaxiwaySpec) -> list[str]:
    """The names of the spec's ``cdc: true`` postgres sources."""
    return [
        name
        for name, source in spec.sources.items()
        if isinstance(source, PostgresSource) and source.cdc
    ]


@dataclass
class CdcTotals:
    """Counts of one CDC consumer since it started."""

    applied: int = 0  # changes (snapshot rows included)
    skipped: int = 0  # changes at or before the stored position
    batches: int = 0
    snapshot_rows: int = 0
    recovered: int = 0  # dirty values recomputed at start

    def summary(self) -> str:
        """The line ``taxiway features stream`` prints for this source when it stops."""
        return (
            f"{self.applied:,} changes applied ({self.snapshot_rows:,} snapshot rows), "
            f"{self.skipped:,} skipped as applied"
        )


@dataclass(frozen=True)
class _View:
    name: str
    entity: str
    keys: tuple[str, ...]
    tiled: TiledView | None  # None: latest or static
    columns: tuple[str, ...]  # latest / static: the columns it serves


class CdcApplier:
    """Applies the changes of one ``cdc: true`` source (the module docstring's steps)."""

    def __init__(
        self,
        spec: TaxiwaySpec,
        name: str,
        store: object,
        state: CdcState,
        cdc: PostgresCdc,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        source = spec.sources.get(name)
        if not isinstance(source, PostgresSource) or not source.cdc:
            raise SourceError(
                f"`{name}` is not a `cdc: true` postgres source "
                f"(CDC sources: {', '.join(cdc_sources(spec)) or 'none'})",
                fix="add `cdc: true` (and `history:`) to the postgres source",
            )
        assert source.history is not None  # nosec B101
        self.name = name
        self.source = source
        self.store = store
        self.state = state
        self.cdc = cdc
        self.history = Path(source.history)
        self.writer = HistoryWriter(self.history, name)
        self.views: list[_View] = []
        for view_name, view in spec.features.items():
            if view.source != name:
                continue
            keys = spec.entity_keys(view.entity)
            if isinstance(view, AggregateView) and view.tiles is not None:
                tiled = TiledView.of(spec, view_name)
                self.views.append(_View(view_name, view.entity, keys, tiled, ()))
            elif isinstance(view, LatestView):
                self.views.append(_View(view_name, view.entity, keys, None, tuple(view.latest)))
            elif isinstance(view, StaticView):
                self.views.append(_View(view_name, view.entity, keys, None, tuple(view.static)))
        self.info: TableInfo | None = None
        self.position: int | None = None
        self.clock = clock or (lambda: datetime.now(UTC))
        self.known_us = source.available_after // timedelta(microseconds=1)
        self.timed = False  # the timestamp is a time or a date: latest values wait for it
        self.due: list[tuple[int, str, str]] = []  # (known at, view, key): a heap

    # ------------------------------------------------------------------ start

    def prepare(self, totals: CdcTotals) -> None:
        """Check the table, finish a batch a crash left dirty, snapshot on the first start
        (or when the slot is gone), then stream from the stored position."""
        self.info = self.cdc.check()
        missing = [
            c
            for v in self.views
            for c in (*v.keys, *v.columns, *(v.tiled.inputs if v.tiled else ()))
            if c not in {name for name, _ in self.info.columns}
        ]
        if missing:
            raise SourceError(
                f"source `{self.name}`: table {self.info.qualified} has no column "
                f"{', '.join(sorted(set(missing)))} (the views over it use them)",
                fix="fix the views' columns, or `table:`",
            )
        ts = dict(self.info.columns).get(self.source.timestamp or "")
        self.timed = ts in _TIMES
        recomputed = self._refresh()
        if recomputed:
            self.state.clean(self.name)
            totals.recovered += recomputed
            logger.warning(
                "%s: recomputed %d online values a crash left behind", self.name, recomputed
            )
        self.position = self.state.position(self.name)
        if self.position is not None and not self.cdc.slot_exists():
            logger.warning(
                "%s: replication slot %s is gone: snapshotting %s again",
                self.name,
                self.cdc.slot,
                self.info.qualified,
            )
            self.position = None
        if self.position is None:
            totals.snapshot_rows += self._snapshot()
            totals.batches += 1
        self._schedule_all()
        assert self.position is not None  # nosec B101
        # from the slot's confirmed position (0: the server's choice), which is at or before
        # the stored one: what lies between is resent and skipped by step 1, so the stored
        # position alone decides what is applied
        self.cdc.start(0)

    def _snapshot(self) -> int:
        lsn, batches = self.cdc.snapshot()
        rows: dict[str, Row | None] = {}
        for batch in batches:
            for row in batch:
                rows[self._pk(row)] = row
        logger.info("%s: snapshot of %d rows at %s", self.name, len(rows), format_lsn(lsn))
        for view in self.views:
            if view.tiled is not None:
                tile_table(self.store).clear(view.entity, view.name)
        history = [(row, "snapshot", lsn, 0) for row in rows.values() if row is not None]
        self._store(lsn, {}, rows, history, reset=True)
        return len(rows)

    # ------------------------------------------------------------------ batches

    def apply(self, transactions: Sequence[Transaction]) -> tuple[int, int]:
        """Apply ``transactions`` (steps 1-6); return (changes applied, changes skipped)."""
        assert self.position is not None  # nosec B101
        fresh = [t for t in transactions if t.end_lsn > self.position]
        skipped = sum(len(t.changes) for t in transactions if t.end_lsn <= self.position)
        if not fresh:
            return 0, skipped
        pks: set[str] = set()
        for txn in fresh:
            for change in txn.changes:
                if change.op == "truncate":
                    raise SourceError(
                        f"source `{self.name}`: {change.table} was truncated; CDC applies "
                        "row changes only",
                        fix="stop `taxiway features stream`, drop the slot "
                        f"(SELECT pg_drop_replication_slot('{self.cdc.slot}')) and delete "
                        "the state folder's streams.sqlite rows of the source (or the file) "
                        "to snapshot the table again",
                    )
                for row in (change.old, change.new):
                    if row is not None:
                        pks.add(self._pk(row))
        before = self.state.rows(self.name, pks)
        working: dict[str, Row | None] = dict(before)
        history: list[tuple[Row, str, int, int]] = []
        count = 0
        for txn in fresh:
            for change in txn.changes:
                count += 1
                if change.op == "insert":
                    assert change.new is not None  # nosec B101
                    working[self._pk(change.new)] = change.new
                    history.append((change.new, "insert", txn.end_lsn, txn.commit_us))
                elif change.op == "update":
                    assert change.new is not None  # nosec B101
                    old_pk = self._pk(change.old if change.old is not None else change.new)
                    previous = working.get(old_pk) or {}
                    new = {
                        c: previous.get(c) if v is UNCHANGED else v for c, v in change.new.items()
                    }
                    working[old_pk] = None
                    working[self._pk(new)] = new
                    history.append((new, "update", txn.end_lsn, txn.commit_us))
                else:  # delete
                    assert change.old is not None  # nosec B101
                    pk = self._pk(change.old)
                    gone = working.get(pk) or change.old
                    working[pk] = None
                    history.append((gone, "delete", txn.end_lsn, txn.commit_us))
        changed = {pk: row for pk, row in working.items() if before.get(pk) != row}
        self._store(fresh[-1].end_lsn, before, changed, history)
        return count, skipped

    def _store(
        self,
        lsn: int,
        before: dict[str, Row],
        after: dict[str, Row | None],
        history: list[tuple[Row, str, int, int]],
        *,
        reset: bool = False,
    ) -> None:
        """Steps 3-6 for a batch ending at ``lsn``."""
        self._append_history(lsn, history, overwrite=reset)
        old = self._entries({pk: before[pk] for pk in after if pk in before})
        new = self._entries({pk: row for pk, row in after.items() if row is not None})
        removed, added = sorted(old - new), sorted(new - old)
        dirty = {entry[:3] for entry in old | new}  # moved or not, each one's value changed
        self.state.apply(self.name, lsn, after, added, removed, dirty, reset=reset)
        self.position = lsn
        known = self._known_by()
        if known is not None:  # rows not known yet: their latest value changes when they are
            latest = {v.name for v in self.views if v.tiled is None}
            for view, key, _, _, rank, _, _ in added:
                if rank > known and view in latest:
                    heapq.heappush(self.due, (rank + self.known_us, view, key))
        self._refresh(known)
        self.state.clean(self.name)

    # ------------------------------------------------------------------ available_after

    def _known_by(self) -> int | None:
        """The highest rank known now (a row is readable from timestamp + available_after);
        None when the source's timestamp is not a time (every row is known)."""
        if not self.timed:
            return None
        return (self.clock() - _EPOCH) // timedelta(microseconds=1) - self.known_us

    def _schedule_all(self) -> None:
        """Schedule every latest value whose newest row is not known yet (at start)."""
        known = self._known_by()
        latest = [v.name for v in self.views if v.tiled is None]
        self.due = []
        if known is None or not latest:
            return
        self.due = [
            (rank + self.known_us, view, key)
            for view, key, rank in self.state.pending(self.name, latest, known)
        ]
        heapq.heapify(self.due)

    def promote(self) -> float | None:
        """Give the online store each latest value whose newer row became known; return the
        seconds until the next one does (None: none waits)."""
        known = self._known_by()
        if known is None or not self.due:
            return None
        now_us = known + self.known_us
        ready: set[tuple[str, str, int]] = set()
        while self.due and self.due[0][0] <= now_us:
            _, view, key = heapq.heappop(self.due)
            ready.add((view, key, 0))
        if ready:
            self.state.mark(self.name, ready)
            self._refresh(known)
            self.state.clean(self.name)
        return None if not self.due else max(0.0, (self.due[0][0] - now_us) / 1e6)

    def confirm(self) -> None:
        """Step 6's end: PostgreSQL may recycle the WAL up to the stored position."""
        if self.position is not None:
            self.cdc.confirm(self.position)

    # ------------------------------------------------------------------ rows

    def _pk(self, row: Row) -> str:
        assert self.info is not None  # nosec B101
        return orjson.dumps([row.get(c) for c in self.info.key]).decode()

    def _table(
        self, rows: Sequence[Row], extra: dict[str, pa.Array[Any]] | None = None
    ) -> pa.Table:
        assert self.info is not None  # nosec B101
        return typed_table(self.info.columns, rows, extra)

    def _placements(
        self, rows: Sequence[Row]
    ) -> Iterable[tuple[_View, str, int, int, int, int, bytes]]:
        """(view, entity key, tile, row index, rank, tie rank, tile event) of each row in each
        online view."""
        if not rows:
            return
        index = pa.array(range(len(rows)), pa.int64())
        table = self._table(rows, {_ROW: index})
        ts, created = self.source.timestamp, self.source.created
        ranks = _ranks(table, ts)
        ties = _ranks(table, created)
        for view in self.views:
            if view.tiled is not None:
                carrying = dataclasses.replace(view.tiled, inputs=(*view.tiled.inputs, _ROW))
                for key, event in events_of(carrying, table):
                    row = int(event.pop())
                    tile = event[0] // view.tiled.tile_us
                    yield view, key, tile, row, 0, 0, orjson.dumps(event)
            else:
                keys = [table.column(k).to_pylist() for k in view.keys]
                for i in range(len(rows)):
                    parts = tuple(column[i] for column in keys)
                    if all(p is not None for p in parts):
                        yield view, encode_key(parts), 0, i, ranks[i], ties[i], b""

    def _entries(self, rows: dict[str, Row]) -> set[IndexEntry]:
        pks = list(rows)
        listed = [rows[pk] for pk in pks]
        return {
            (v.name, key, tile, pks[i], rank, tie, event)
            for v, key, tile, i, rank, tie, event in self._placements(listed)
        }

    # ------------------------------------------------------------------ online values

    def _refresh(self, known: int | None = None) -> int:
        """Recompute each dirty (view, key, tile) from the stored rows into the online store
        (a latest value from the newest row ranked at or below ``known``: known by now);
        return how many."""
        newest = [v.name for v in self.views if v.tiled is None]
        known = self._known_by() if known is None else known
        dirty = self.state.dirty_rows(self.name, newest=newest, known_by=known)
        by_view: dict[str, dict[tuple[str, int], list[Any]]] = {}
        for (view_name, key, tile), rows in dirty.items():
            by_view.setdefault(view_name, {})[(key, tile)] = rows
        views = {v.name: v for v in self.views}
        for view_name, members in by_view.items():
            view = views.get(view_name)
            if view is None:  # a view no longer in the spec
                continue
            pairs = list(members)
            if view.tiled is not None:
                self._refresh_tiles(view, view.tiled, pairs, members)
            else:
                self._refresh_rows(view, pairs, members)
        return len(dirty)

    def _refresh_tiles(
        self,
        view: _View,
        tiled: TiledView,
        pairs: Sequence[tuple[str, int]],
        members: dict[tuple[str, int], list[Any]],
    ) -> None:
        out = []
        for key, tile in pairs:
            events: list[Event] = list(members.get((key, tile), []))
            events.sort(key=lambda e: (e[0], orjson.dumps(e[1:])))
            out.append((key, tile, dumps(summarize(tiled, events)), dumps(events)))
        tile_table(self.store).put(view.entity, view.name, out)

    def _refresh_rows(
        self,
        view: _View,
        pairs: Sequence[tuple[str, int]],
        members: dict[tuple[str, int], list[Row]],
    ) -> None:
        now = datetime.now(UTC)
        ts = self.source.timestamp
        names = [f"{view.name}__{c}" for c in view.columns]
        listed = [row for pair in pairs for row in members.get(pair, [])]
        typed = iter(self._table(listed).to_pylist() if listed else [])
        written = []
        for pair in pairs:
            rows = [next(typed) for _ in members.get(pair, [])]
            if not rows:
                written.append((pair[0], ViewValues(view.name, dict.fromkeys(names), None, now)))
                continue
            best = rows[-1]  # the newest (dirty_rows ranks them)
            event_time = best.get(ts) if ts is not None else None
            if isinstance(event_time, datetime) and event_time.tzinfo is None:
                event_time = event_time.replace(tzinfo=UTC)
            values = {n: plain_value(best.get(c)) for n, c in zip(names, view.columns, strict=True)}
            written.append((pair[0], ViewValues(view.name, values, event_time, now)))
        self.store.write(view.entity, written)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ history

    def _append_history(
        self, lsn: int, history: list[tuple[Row, str, int, int]], *, overwrite: bool
    ) -> None:
        done = None if overwrite else self.writer.recorded
        if done is not None:
            history = [h for h in history if h[2] > done]
        if not history and not overwrite:
            return
        table = self._table(
            [row for row, _, _, _ in history],
            {
                "_op": pa.array([op for _, op, _, _ in history], pa.string()),
                "_lsn": pa.array([at for _, _, at, _ in history], pa.int64()),
                "_committed_at": pa.array(
                    [_PG_EPOCH + timedelta(microseconds=us) for _, _, _, us in history],
                    pa.timestamp("us", tz="UTC"),
                ),
            },
        )
        self.writer.append(table, lsn, overwrite=overwrite)


_LOWEST = -(2**63)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMES = {1184, 1114, 1082}  # timestamptz, timestamp, date: ranked in epoch microseconds


def _ranks(table: pa.Table, column: str | None) -> list[int]:
    """``column``'s values as comparable integers (epoch microseconds for times, days for
    dates; the lowest for nulls and other types): a latest view's order."""
    if column is None or column not in table.schema.names:
        return [0] * table.num_rows
    values = table.column(column)
    if pa.types.is_timestamp(values.type):
        as_us = pc.cast(pc.cast(values, pa.timestamp("us", tz=values.type.tz)), pa.int64())
    elif pa.types.is_date(values.type):
        as_us = pc.multiply(pc.cast(pc.cast(values, pa.date32()), pa.int64()), 86_400_000_000)
    elif pa.types.is_integer(values.type):
        as_us = pc.cast(values, pa.int64())
    else:
        return [_LOWEST] * table.num_rows
    return [_LOWEST if v is None else int(v) for v in as_us.to_pylist()]


async def consume_cdc(
    applier: CdcApplier, stop: asyncio.Event, *, progress_s: float = 10.0
) -> CdcTotals:
    """Capture ``applier``'s source until ``stop`` is set, on the running loop's thread.

    A failure at the first start is raised (a wrong URL, a table without a key...); a
    connection lost later (PostgreSQL restarted) is retried every :data:`RETRY_S` seconds,
    resuming from the stored position."""
    totals = CdcTotals()
    started = False
    while not stop.is_set():
        try:
            applier.prepare(totals)
            started = True
            await _capture(applier, stop, totals, progress_s)
        except ReplicationLost as error:
            if not started:
                raise
            logger.warning("%s: %s; retrying in %.0f s", applier.name, error, RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)
        finally:
            applier.cdc.close()
    return totals


async def _capture(
    applier: CdcApplier, stop: asyncio.Event, totals: CdcTotals, progress_s: float
) -> None:
    cdc = applier.cdc
    loop = asyncio.get_running_loop()
    last_log, last_applied = time.monotonic(), totals.applied
    while not stop.is_set():
        transactions = cdc.poll(max_changes=BATCH_CHANGES, wait_s=0)
        if transactions:
            applied, skipped = applier.apply(transactions)
            applier.confirm()
            totals.applied += applied
            totals.skipped += skipped
            totals.batches += 1
        wait = applier.promote()
        if not transactions:
            await _readable(loop, cdc.fileno(), 0.5 if wait is None else min(0.5, wait))
        now = time.monotonic()
        if now - last_log >= progress_s:
            _progress(applier, totals, (totals.applied - last_applied) / (now - last_log))
            last_log, last_applied = now, totals.applied


def _progress(applier: CdcApplier, totals: CdcTotals, rate: float) -> None:
    lag = applier.cdc.lag()
    behind = (
        f"slot {lag.slot} retains {lag.retained_bytes:,} bytes of WAL, "
        f"{lag.confirmed_lag_bytes:,} unconfirmed ({lag.wal_status})"
        if lag is not None
        else "no slot"
    )
    logger.info(
        "%s: %d changes applied (%.0f/s), %d skipped as applied; %s",
        applier.name,
        totals.applied,
        rate,
        totals.skipped,
        behind,
    )
    if lag is not None and lag.wal_status in ("unreserved", "lost"):
        logger.error(
            "%s: slot %s is %s: PostgreSQL has removed (or will remove) WAL it needs "
            "(max_slot_wal_keep_size); see the CDC runbook",
            applier.name,
            lag.slot,
            lag.wal_status,
        )


async def _readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)
