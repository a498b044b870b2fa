"""``taxiway features stream``: apply the events of ``kind: nats`` sources to the online tiles
and the offline history, each event exactly once.

One process consumes every nats source of the spec, each through a durable JetStream pull
consumer (``durable:``) with explicit acks, and every ``cdc: true`` postgres source
(:mod:`taxiway.features.stream_cdc`). For each fetched batch of a nats source, in this order:

1. check each event (:mod:`taxiway.data.sources.nats_events`); a refused one is published,
   body unchanged, to ``<subject>.quarantine`` with its reason in the ``Taxiway-Reason``
   header (a stream ``<stream>_QUARANTINE`` keeps that subject when no stream does);
2. drop the events whose id the journal (:mod:`taxiway.features.stream_journal`) has applied,
   and repeats within the batch;
3. journal the batch: its number ``n`` (the last batch's plus one), its events, their ids, and
   the pre-image of every tile it touches (one SQLite commit);
4. add the events to every tiled view over the source (:func:`~taxiway.features.tiles.apply_events`);
5. append them to the Delta table at ``history:`` as application transaction ``(source, n)``
   (:class:`~taxiway.data.history.HistoryWriter`: skipped when the table records ``n``);
6. record their ids as applied, ``n`` as the last batch, and end the journalled batch (one
   SQLite commit);
7. acknowledge every message of the batch (applied, duplicate or quarantined).

**The guarantee.** Each event id is added to the tiles and the history exactly once, across
any crash of the consumer (``kill -9`` included) at any point: a crash before 6 leaves the
batch journalled, so the next start restores the tiles' pre-images, applies the journalled
events again and appends them to the history unless its Delta log already records batch ``n``
(steps 4-6 again); the unacknowledged events come again and are skipped as applied. A crash
between 6 and 7 redelivers events whose ids are recorded, which are acknowledged without
being applied. It assumes that this consumer is the only writer of those views' tiles and of
the history while it runs (run ``materialize`` / ``compact`` with it stopped), one consumer
per source and state folder, an online store that keeps what it acknowledged (SQLite; Redis
with persistence), and that the journal keeps the ids (it keeps them all). Publishers avoid
duplicates upstream with ``Nats-Msg-Id`` (JetStream drops a repeat inside the stream's
duplicate window, 2 minutes by default); the journal catches repeats at any distance.

Progress (events applied per second, duplicates, quarantined, and the lag: messages in the
stream not yet delivered to the consumer) is logged every ``progress_s`` seconds. SIGTERM or
SIGINT finishes the batch in hand, acknowledges it and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import nats
import pyarrow as pa
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from taxiway.data.cdc.postgres import PostgresCdc
from taxiway.data.contracts.loader import load_contract
from taxiway.data.contracts.model import Contract
from taxiway.data.history import HistoryWriter
from taxiway.data.sources.nats_events import check_events
from taxiway.engines.duckdb import connect as connect_duckdb
from taxiway.errors import FeatureError, SourceError
from taxiway.features.online._codec import dumps
from taxiway.features.stream_cdc import CdcApplier, CdcTotals, cdc_sources, consume_cdc
from taxiway.features.stream_cdc_state import CdcState
from taxiway.features.stream_journal import Pending, StreamJournal, UndoTile
from taxiway.features.tiles import (
    Event,
    TiledView,
    apply_events,
    apply_grouped,
    group_events,
    summarize,
    tile_table,
)
from taxiway.spec.models import AggregateView, NatsSource, PostgresSource, TaxiwaySpec

__all__ = [
    "JOURNAL_FILE",
    "REASON_HEADER",
    "BatchResult",
    "StreamApplier",
    "StreamEvent",
    "connect",
    "consume",
    "ensure_streams",
    "nats_sources",
    "quarantine_subject",
    "run_streams",
]

logger = logging.getLogger("taxiway.stream")

JOURNAL_FILE = "streams.sqlite"
REASON_HEADER = "Taxiway-Reason"
MSG_ID = "Nats-Msg-Id"
FETCH_WAIT_S = 1.0
FOLLOW_WAIT_S = 0.02
# behind, a batch takes up to this many events (fetched ``batch`` at a time): the per-batch
# costs (a Delta commit, whose cost grows with the table's files; two journal commits; each
# touched tile's rewrite) are then shared by many; caught up, a batch is what has come. The cap
# is also the freshness of a consumer that runs behind: an event waits for its whole batch. On
# this 2-core machine, quiet, at 5,000 events/s with the service answering (bench/stream.py):
# 5,000 gave 80 us CPU an event but p99 1.1-1.2 s; 2,000 gives 109 us and p99 0.49-0.50 s
BACKLOG_EVENTS = 2_000
BACKLOG_WAIT_S = 0.1  # per further fetch of a backlog's batch (the stream has them at hand)
CONNECT_TIMEOUT_S = 2.0


# a view, the batch's events per (key, tile), and those tiles' stored (state, events)
_Prepared = tuple[
    TiledView, dict[tuple[str, int], list[Event]], dict[tuple[str, int], tuple[bytes, bytes]]
]


class StreamEvent(NamedTuple):
    """One message of a stream: its ``Nats-Msg-Id`` header (None without), body, sequence."""

    header_id: str | None
    body: bytes
    seq: int


@dataclass
class BatchResult:
    """What :meth:`StreamApplier.apply` did with a batch."""

    applied: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)


def nats_sources(spec: TaxiwaySpec) -> list[str]:
    """The names of the spec's ``kind: nats`` sources."""
    return [name for name, source in spec.sources.items() if isinstance(source, NatsSource)]


def quarantine_subject(source: NatsSource) -> str:
    """Where refused events of ``source`` are published: ``<subject>.quarantine``."""
    return f"{source.subject}.quarantine"


class StreamApplier:
    """Applies batches of one nats source to its tiled views and history (steps 1-6)."""

    def __init__(self, spec: TaxiwaySpec, name: str, store: object, journal: StreamJournal):
        source = spec.sources.get(name)
        if not isinstance(source, NatsSource):
            raise FeatureError(
                f"`{name}` is not a nats source (nats sources: "
                f"{', '.join(nats_sources(spec)) or 'none'})",
                fix="declare it with `kind: nats`, or name one of the nats sources",
            )
        self.name = name
        self.source = source
        self.store = store
        self.journal = journal
        self.views = [
            TiledView.of(spec, view)
            for view, declared in spec.features.items()
            if isinstance(declared, AggregateView)
            and declared.source == name
            and declared.tiles is not None
        ]
        self.required = sorted({key for view in self.views for key in view.keys})
        self.contract: Contract | None = (
            load_contract(source.contract) if source.contract is not None else None
        )
        self.history = Path(source.history)
        self.writer = HistoryWriter(self.history, name)
        self.duckdb = connect_duckdb(threads=1)  # the events' checks, batch after batch

    def close(self) -> None:
        """Close the applier's DuckDB connection (the store and journal are the caller's)."""
        self.duckdb.close()

    def recover(self) -> bool:
        """Finish a batch a crash left journalled; True when there was one."""
        pending = self.journal.pending(self.name)
        if pending is None:
            return False
        restored = self._restore(pending)
        table = pa.ipc.open_stream(pending.events).read_all()
        self._finish(pending.batch, table, pending.ids)
        logger.warning(
            "%s: finished batch %d, interrupted by a crash (%d tiles restored, %d events "
            "applied again); its redelivered events are skipped as applied",
            self.name,
            pending.batch,
            restored,
            len(pending.ids),
        )
        return True

    def _restore(self, pending: Pending) -> int:
        """Put back the pre-images of the tiles the pending batch touched; return how many.

        A batch only appends to a tile's events, so a tile's list before it is the stored
        list's first ``length`` bytes (its JSON closed again), whether the crash came before
        or after the tile's write; the state is the journal's copy."""
        views = {view.name: view for view in self.views}
        by_view: dict[tuple[str, str], list[tuple[str, int, bytes | None, int | None]]] = {}
        for view_name, entity, key, tile, state, length in pending.undo:
            if view_name in views:  # else no longer tiled: materialize rebuilds it
                by_view.setdefault((entity, view_name), []).append((key, tile, state, length))
        tiles = tile_table(self.store) if by_view else None
        for (entity, view_name), undo in by_view.items():
            assert tiles is not None  # nosec B101
            now = tiles.stored(entity, view_name, [(key, tile) for key, tile, _, _ in undo])
            empty = dumps(summarize(views[view_name], []))
            rows = [
                (key, tile, empty, b"[]")
                if state is None or length is None
                else (key, tile, state, _truncated(now.get((key, tile)), length, view_name))
                for key, tile, state, length in undo
            ]
            tiles.put(entity, view_name, rows)
        return len(pending.undo)

    def apply(self, events: Sequence[StreamEvent]) -> BatchResult:
        """Check, de-duplicate and apply ``events`` (steps 1-6 of the module docstring)."""
        result = BatchResult()
        if not events:
            return result
        checked = check_events(
            self.name,
            self.source,
            self.contract,
            [(e.header_id, e.body) for e in events],
            required=self.required,
            con=self.duckdb,
        )
        result.rejected = checked.rejected
        refused = {index for index, _ in checked.rejected}
        valid_seqs = [e.seq for i, e in enumerate(events) if i not in refused]
        seen = self.journal.applied(self.name, checked.ids)
        keep: list[int] = []
        fresh: list[tuple[str, int]] = []
        for row, event_id in enumerate(checked.ids):
            if event_id in seen:
                result.duplicates += 1
                continue
            seen.add(event_id)
            keep.append(row)
            fresh.append((event_id, valid_seqs[row]))
        if not keep:
            return result
        table = self._complete(checked.table.take(keep))
        batch = self.journal.last_batch(self.name) + 1
        prepared = self._prepare(table)
        undo: list[UndoTile] = [
            (view.name, view.entity, key, tile, None, None)
            if before is None
            else (view.name, view.entity, key, tile, before[0], len(before[1]))
            for view, grouped, stored in prepared
            for key, tile in sorted(grouped)
            for before in [stored.get((key, tile))]
        ]
        self.journal.begin(self.name, batch, _ipc(table), fresh, undo)
        self._finish(batch, table, fresh, prepared)
        result.applied = len(keep)
        return result

    def _finish(
        self,
        batch: int,
        table: pa.Table,
        ids: Sequence[tuple[str, int]],
        prepared: Sequence[_Prepared] | None = None,
    ) -> None:
        """Steps 4-6: the tiles, the history (once per batch number), the journal's commit.

        ``prepared``: the batch's events grouped per view and the tiles' stored events, as
        read for the pre-images (None: grouped and read here, as after a crash)."""
        if prepared is None:
            for view in self.views:
                apply_events(self.store, view, table)
        else:
            for view, grouped, stored in prepared:
                apply_grouped(self.store, view, grouped, stored=stored)
        self.writer.append(table, batch)
        self.journal.commit(self.name, ids)

    def _complete(self, table: pa.Table) -> pa.Table:
        """``table`` with a null column for each view input no event of the batch had."""
        for view in self.views:
            for column in view.inputs:
                if column not in table.schema.names:
                    table = table.append_column(column, pa.nulls(table.num_rows))
        return table

    def _prepare(self, table: pa.Table) -> list[_Prepared]:
        """Per view: the batch's events grouped per tile, and those tiles' stored state and
        events (the journal's pre-images, and what the tiles' update starts from: one read
        for both)."""
        prepared: list[_Prepared] = []
        tiles = tile_table(self.store) if self.views else None
        for view in self.views:
            assert tiles is not None  # nosec B101
            grouped = group_events(view, table)
            stored = tiles.stored(view.entity, view.name, sorted(grouped))
            prepared.append((view, grouped, stored))
        return prepared


def _truncated(stored: tuple[bytes, bytes] | None, length: int, view: str) -> bytes:
    """A tile's events' JSON list as it was ``length`` bytes long, from ``stored`` (the tile's
    state and list now: the list then, perhaps with a batch's events appended).

    >>> _truncated((b"", b"[[1,2],[3,4]]"), 7, "v"), _truncated((b"", b"[[3,4]]"), 2, "v")
    (b'[[1,2]]', b'[]')
    """
    events = b"" if stored is None else stored[1]
    if length <= 2:
        return b"[]"
    if len(events) == length and events.endswith(b"]"):
        return events
    if len(events) < length or events[length - 1 : length] != b",":
        raise FeatureError(
            f"a tile of view `{view}` no longer starts with its events before the "
            "interrupted batch (rewritten since the crash?)",
            fix="rebuild the view's tiles with `taxiway features materialize`",
        )
    return events[: length - 1] + b"]"


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


# ---------------------------------------------------------------------- NATS


async def connect(source: NatsSource, *, name: str, reconnect: bool = True) -> Client:
    """A NATS connection to ``source.url``; :class:`SourceError` (with the fix) when down."""
    url = source.url.reveal()

    async def quiet(error: Exception) -> None:  # nats-py logs a traceback per failed attempt
        logger.debug("NATS (source %s): %s", name, error)

    try:
        # nats-py retries a refused first connect forever: bound it
        client: Client = await asyncio.wait_for(
            nats.connect(
                url,
                name=f"taxiway {name}",
                connect_timeout=CONNECT_TIMEOUT_S,
                allow_reconnect=reconnect,
                max_reconnect_attempts=-1 if reconnect else 0,
                reconnect_time_wait=1,
                error_cb=quiet,
            ),
            timeout=CONNECT_TIMEOUT_S,
        )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        raise SourceError(
            f"source `{name}`: cannot connect to NATS at {source.url}: "
            f"{error or type(error).__name__}",
            fix="start nats-server with JetStream (`nats-server -js`), or fix `url:`",
        ) from None
    return client


async def ensure_streams(js: JetStreamContext, source: NatsSource) -> None:
    """Create the source's stream (holding its subject) and a quarantine stream when absent."""
    try:
        await js.stream_info(source.stream)
    except NotFoundError:
        await js.add_stream(name=source.stream, subjects=[source.subject])
    subject = quarantine_subject(source)
    try:
        await js.find_stream_name_by_subject(subject)
    except NotFoundError:
        await js.add_stream(name=f"{source.stream}_QUARANTINE", subjects=[subject])


def _header(reason: str) -> str:
    flat = " ".join(reason.split())
    return flat if len(flat) <= 1000 else flat[:997] + "..."


@dataclass
class Totals:
    """Counts of one consumer since it started."""

    applied: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    recovered: int = 0

    def summary(self) -> str:
        """The line ``taxiway features stream`` prints for this source when it stops."""
        return (
            f"{self.applied:,} events applied, {self.duplicates:,} duplicates skipped, "
            f"{self.quarantined:,} quarantined"
        )


async def consume(
    applier: StreamApplier,
    stop: asyncio.Event,
    *,
    progress_s: float = 10.0,
) -> Totals:
    """Consume ``applier``'s source until ``stop`` is set (the module docstring's loop)."""
    source, name = applier.source, applier.name
    totals = Totals(recovered=int(applier.recover()))
    client = await connect(source, name=name)
    try:
        js = client.jetstream()
        await ensure_streams(js, source)
        subscription = await js.pull_subscribe(
            source.subject,
            durable=source.durable,
            stream=source.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=source.ack_wait.total_seconds(),
                max_ack_pending=max(10_000, 4 * source.batch),
            ),
        )
        quarantine = quarantine_subject(source)
        last_log, last_applied = time.monotonic(), 0
        while not stop.is_set():
            messages = await _fetch(
                subscription, source.batch, most=max(source.batch, BACKLOG_EVENTS)
            )
            if messages:
                events = [
                    StreamEvent((m.headers or {}).get(MSG_ID), m.data, stream_sequence(m))
                    for m in messages
                ]
                # on the loop's thread: the journal's connection is this thread's
                result = applier.apply(events)
                for index, reason in result.rejected:
                    seq = events[index].seq
                    await js.publish(
                        quarantine,
                        events[index].body,
                        headers={
                            REASON_HEADER: _header(reason),
                            MSG_ID: f"{source.stream}:{seq}",
                            "Taxiway-Seq": str(seq),
                        },
                    )
                for message in messages:
                    await message.ack()
                await client.flush()
                totals.applied += result.applied
                totals.duplicates += result.duplicates
                totals.quarantined += len(result.rejected)
                totals.batches += 1
            now = time.monotonic()
            if now - last_log >= progress_s:
                lag = (await subscription.consumer_info()).num_pending
                logger.info(
                    "%s: %d events applied (%.0f/s), %d duplicates skipped, %d quarantined, lag %d",
                    name,
                    totals.applied,
                    (totals.applied - last_applied) / (now - last_log),
                    totals.duplicates,
                    totals.quarantined,
                    lag,
                )
                last_log, last_applied = now, totals.applied
    finally:
        await client.close()
    return totals


def stream_sequence(message: Msg) -> int:
    """``message``'s stream sequence, read from its reply subject as nats-py's ``metadata``
    reads it, without building the rest (its time, counts, names): a tenth of the CPU.

    The subject is ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.
    <time>.<pending>`` (9 tokens), or with a domain and an account hash after ``ACK`` (11 or
    more); any other reply is left to ``metadata`` (which raises nats-py's error).

    >>> stream_sequence(Msg(None, reply="$JS.ACK.S.c.1.42.40.1733490000000000000.0"))
    42
    >>> stream_sequence(Msg(None, reply="$JS.ACK._.acc.S.c.2.43.41.1733490000000000000.0.r"))
    43
    """
    tokens = message.reply.split(".")
    if len(tokens) >= 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        if len(tokens) == 9:
            return int(tokens[5])
        if len(tokens) >= 11:
            return int(tokens[7])
    return message.metadata.sequence.stream


async def _fetch(
    subscription: JetStreamContext.PullSubscription, batch: int, *, most: int | None = None
) -> list[Msg]:
    """The next batch: up to ``batch`` messages (``most`` under a backlog), returned as soon as
    one is in hand.

    One message is awaited for up to ``FETCH_WAIT_S`` (none: an empty list); then the ones
    the stream already holds are taken, ``batch`` per fetch (the first waiting at most
    ``FOLLOW_WAIT_S``, the next ones ``BACKLOG_WAIT_S``), until the first comes back short
    (caught up), a later one brings nothing, or ``most`` (default ``batch``) are in hand.
    Under backlog a batch is full at once; caught up, an event waits ``FOLLOW_WAIT_S`` at
    most, not until a batch fills (nats-py's ``fetch(batch)`` returns early only when the
    server ends the pull once it holds no more: nats-server 2.9 does, and nats-py notes newer
    servers keep such a pull until it expires).
    """
    most = batch if most is None else max(most, batch)
    try:
        got = await subscription.fetch(1, timeout=FETCH_WAIT_S)
    except (nats.errors.TimeoutError, TimeoutError):  # nothing new within the wait
        return []
    want = batch - 1
    while want > 0:
        wait = FOLLOW_WAIT_S if len(got) == 1 else BACKLOG_WAIT_S
        try:
            rest = await subscription.fetch(want, timeout=wait)
        except (nats.errors.TimeoutError, TimeoutError):  # nothing more yet
            break
        got += rest
        if len(got) == 1 + len(rest) and len(rest) < want:  # the first fetch came back short:
            break  # caught up (a busy process may also cut a fetch short: the next goes on)
        if not rest:
            break
        want = min(batch, most - len(got))
    return got


async def run_streams(
    spec: TaxiwaySpec,
    store: object,
    state_dir: Path,
    *,
    sources: Sequence[str] | None = None,
    progress_s: float = 10.0,
    stop: asyncio.Event | None = None,
) -> dict[str, Totals | CdcTotals]:
    """Consume every nats source and capture every ``cdc: true`` postgres source of ``spec``
    (or those in ``sources``), in this one process, until SIGTERM/SIGINT or ``stop``."""
    streams, captured = nats_sources(spec), cdc_sources(spec)
    names = list(sources) if sources else streams + captured
    if not names:
        raise FeatureError(
            "the spec declares no nats source to stream and no postgres source with `cdc: true`",
            fix="add a source with `kind: nats`, or `cdc: true` on a postgres source "
            "(see docs/features.md, Streams)",
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    journal = StreamJournal(state_dir / JOURNAL_FILE)
    state = CdcState(state_dir / JOURNAL_FILE)
    appliers: list[StreamApplier] = []
    try:
        runs: list[Any] = []
        for name in names:
            declared = spec.sources.get(name)
            if isinstance(declared, PostgresSource) and declared.cdc:
                capture = PostgresCdc(name, declared)
                applier = CdcApplier(spec, name, store, state, capture)
                runs.append(consume_cdc(applier, stop, progress_s=progress_s))
            else:
                appliers.append(StreamApplier(spec, name, store, journal))
                runs.append(consume(appliers[-1], stop, progress_s=progress_s))
        results: list[Any] = await asyncio.gather(*runs)
    finally:
        for each in appliers:
            each.close()
        journal.close()
        state.close()
    return dict(zip(names, results, strict=True))
