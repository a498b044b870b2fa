"""Online windows as time tiles: an aggregate view's events kept per entity and tile, merged at
read time over the window ending at the request time.

Definitions (the offline semantics of :mod:`taxiway.features.pit`, restated in known time):

- An event's *known time* is ``k = ts + available_after`` (whole microseconds, the timestamp
  read as UTC). A read at T of a window W covers the events with ``T - (W - available_after)
  < k <= T``: exactly the offline rule ``ts > T - W and ts + available_after <= T``. A window
  no longer than ``available_after`` holds nothing (counts and sums 0, the rest null).
- A tile of width g holds the events with ``i*g <= k < (i+1)*g`` (tile index ``i = k // g``,
  tiles aligned on the Unix epoch). Per entity key, view and tile the store keeps the tile's
  *state* (the number of events, and per input column the non-null count, sum, sum of squared
  deviations from the tile's mean, min and max) and the tile's *events* (each event's known
  time and input values).
- A read at T merges the states of the tiles wholly inside the window and summarises the
  events of the two *edge* tiles (the tile of T and the tile of the window's start) filtered
  to the window. So the read is exact at any T, not only on tile boundaries, and a window's
  value falls as time passes with no new events: events leave the window at their own
  ``k + W - available_after``. Keeping the edge tiles' events is the price of that exactness
  (a read moves at most two tiles' events; the store holds the events of the tiles kept).
- Values: ``count(*)`` counts events, ``count(c)`` non-null values; ``sum`` is 0 when the
  window has no event and null when it has events but no non-null value (a float otherwise);
  ``avg`` and ``stddev`` (sample, n-1) are null without values (stddev: fewer than two);
  ``min``/``max`` keep the value as stored (timestamps as ISO text). Variances merge with
  Chan's formula over (count, sum, squared deviations), which loses far less to cancellation
  than a raw sum of squares. ``count_distinct`` cannot be tiled (the spec refuses it).

Writes: :func:`apply_events` adds events (the stream consumer's entry point); it reads the
touched tiles' states and events, merges the new events' state into each (so the sums and
squared deviations of a tile built event by event may differ from a rebuild's in the last
bits), appends the new events to the stored list (a tile's events are in the order they were
added, not sorted), and writes each tile back. It is not
idempotent: applying the same events twice counts them twice, so the caller de-duplicates
(e.g. by event id) and is the only writer of a view's tiles while it runs (two concurrent
writers of one tile may lose one's events). :func:`replace_tiles` rebuilds a view's tiles
from the offline history (``taxiway features compact``, and materialization when the data
changed).

>>> g = 3_600_000_000  # one hour in microseconds
>>> events = [[0, 1.0], [g - 1, 3.0], [g, None]]
>>> view = TiledView("v", "e", ("id",), "ts", 0, g, ("x",), (True,), (True,),
...                  (("v__n_2h", "count", -1, 2 * g), ("v__s_2h", "sum", 0, 2 * g)))
>>> states = {0: summarize(view, events[:2]), 1: summarize(view, events[2:])}
>>> window_values(view, states, {0: events[:2], 1: events[2:]}, at_us=g)
{'v__n_2h': 3, 'v__s_2h': 4.0}
>>> window_values(view, states, {0: events[:2], 1: events[2:]}, at_us=2 * g)  # [0] left
{'v__n_2h': 2, 'v__s_2h': 3.0}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from taxiway.errors import FeatureError
from taxiway.features.definitions import view_columns
from taxiway.features.online._codec import decode, dumps
from taxiway.features.online.base import TileRange, TileTable
from taxiway.spec.models import AggregateView, TaxiwaySpec

__all__ = [
    "TiledView",
    "apply_events",
    "apply_grouped",
    "events_of",
    "group_events",
    "read_tiled",
    "replace_tiles",
    "summarize",
    "tile_table",
    "tiled_views",
    "window_values",
]

_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WRITE_CHUNK = 2_000  # tiles merged and written per store step
_KNOWN = itemgetter(0)  # an event's known time

Event = list[Any]  # [known time in epoch us, input value 0, input value 1, ...]
# [events, [[n, sum, m2, min, max] per input]]: a tile's (or a window's) mergeable state
State = list[Any]
# (feature name, function, input index (-1 for count(*)), window in us)
Feature = tuple[str, str, int, int]


@dataclass(frozen=True)
class TiledView:
    """What the tile code needs of one tiled aggregate view, resolved from the spec once."""

    name: str
    entity: str
    keys: tuple[str, ...]
    timestamp: str
    available_after_us: int
    tile_us: int
    inputs: tuple[str, ...]  # the input columns, sorted
    sums: tuple[bool, ...]  # per input: whether sum/avg/stddev need its sum and m2
    extremes: tuple[bool, ...]  # per input: whether min/max need its extremes
    features: tuple[Feature, ...]

    @classmethod
    def of(cls, spec: TaxiwaySpec, name: str) -> TiledView:
        """The tiled view ``name`` of ``spec``; :class:`FeatureError` if it is not tiled."""
        view = spec.features.get(name)
        if not isinstance(view, AggregateView) or view.tiles is None:
            tiled = ", ".join(tiled_views(spec)) or "none"
            raise FeatureError(
                f"feature view `{name}` is not a tiled aggregate view (tiled views: {tiled})",
                fix=f"add `tiles: 1h` (or 1d) to features.{name}, or name a tiled view",
            )
        source = spec.sources[view.source]
        assert source.timestamp is not None  # the spec requires it of aggregate views  # nosec B101
        inputs = tuple(sorted({a.column for a in view.aggregate.values() if a.column}))
        index = {c: i for i, c in enumerate(inputs)}
        features = tuple(
            (
                c.name,
                str(c.function),
                -1 if c.column is None else index[c.column],
                (c.window or timedelta(0)) // _US,
            )
            for c in view_columns(name, view)
        )
        used = {(f[2], f[1]) for f in features}
        return cls(
            name=name,
            entity=view.entity,
            keys=spec.entity_keys(view.entity),
            timestamp=source.timestamp,
            available_after_us=source.available_after // _US,
            tile_us=view.tiles // _US,
            inputs=inputs,
            sums=tuple(
                any((i, f) in used for f in ("sum", "avg", "stddev")) for i in index.values()
            ),
            extremes=tuple(any((i, f) in used for f in ("min", "max")) for i in index.values()),
            features=features,
        )

    def range_at(self, at_us: int) -> TileRange:
        """The tiles a read at ``at_us`` touches: first and last tile, and the edge tiles."""
        last = at_us // self.tile_us
        starts = [
            (at_us - span + 1) // self.tile_us
            for span in (w - self.available_after_us for _, _, _, w in self.features)
            if span > 0
        ]
        first = min(starts, default=last)
        return TileRange(self.name, first, last, tuple(sorted({last, *starts})))


def tiled_views(spec: TaxiwaySpec, entity: str | None = None) -> list[str]:
    """The names of the views that declare ``tiles:`` (of ``entity``, when given)."""
    return [
        name
        for name, view in spec.features.items()
        if isinstance(view, AggregateView)
        and view.tiles is not None
        and (entity is None or view.entity == entity)
    ]


def tile_table(store: object) -> TileTable:
    """The tile table of ``store``; :class:`FeatureError` for a store that keeps no tiles."""
    tiles = getattr(store, "tiles", None)
    if not isinstance(tiles, TileTable):
        raise FeatureError(
            f"the online store {store!r} keeps no tiles",
            fix="use the sqlite or redis online store for views with `tiles:`",
        )
    return tiles


# ---------------------------------------------------------------------- states


def summarize(view: TiledView, events: Iterable[Event]) -> State:
    """The state of ``events`` (a tile's, or an edge tile's events inside a window)."""
    rows = list(events)
    per_input: list[list[Any]] = []
    for i, (sums, extremes) in enumerate(zip(view.sums, view.extremes, strict=True)):
        values = [e[i + 1] for e in rows if e[i + 1] is not None]
        n = len(values)
        total = m2 = 0.0
        if sums and n:
            total = math.fsum(values)
            mean = total / n
            m2 = math.fsum((v - mean) ** 2 for v in values)
        low = min(values) if extremes and n else None
        high = max(values) if extremes and n else None
        per_input.append([n, total, m2, low, high])
    return [len(rows), per_input]


def _merge(into: State, other: State) -> None:
    """Add ``other`` into ``into`` (Chan's formula for the squared deviations)."""
    into[0] += other[0]
    for mine, theirs in zip(into[1], other[1], strict=True):
        n_b = theirs[0]
        if not n_b:
            continue
        n_a = mine[0]
        if n_a:
            n = n_a + n_b
            delta = theirs[1] / n_b - mine[1] / n_a
            mine[2] += theirs[2] + delta * delta * n_a * n_b / n
            mine[1] += theirs[1]
            mine[0] = n
            if theirs[3] is not None:
                mine[3] = theirs[3] if mine[3] is None or theirs[3] < mine[3] else mine[3]
                mine[4] = theirs[4] if mine[4] is None or theirs[4] > mine[4] else mine[4]
        else:
            mine[:] = list(theirs)


def _empty(view: TiledView) -> State:
    return [0, [[0, 0.0, 0.0, None, None] for _ in view.inputs]]


def _value(function: str, state: State, index: int) -> Any:
    if index < 0:  # count(*)
        return state[0]
    n, total, m2, low, high = state[1][index]
    if function == "count":
        return n
    if function == "sum":
        return 0 if state[0] == 0 else (float(total) if n else None)
    if function == "avg":
        return float(total) / n if n else None
    if function == "stddev":
        return math.sqrt(max(m2, 0.0) / (n - 1)) if n > 1 else None
    return low if function == "min" else high


def window_values(
    view: TiledView,
    states: dict[int, State],
    edge_events: dict[int, list[Event]],
    *,
    at_us: int,
) -> dict[str, Any]:
    """Every feature of ``view`` at ``at_us`` from the tiles read (the module's definitions).

    ``states`` holds the tiles in the read's range, ``edge_events`` the events of its edge
    tiles (:meth:`TiledView.range_at`); tiles absent from both hold no event.
    """
    g = view.tile_us
    last = at_us // g
    merged: dict[int, State] = {}  # per window
    values: dict[str, Any] = {}
    ordered = sorted(states)
    for name, function, index, window in view.features:
        span = window - view.available_after_us
        if span <= 0:
            values[name] = 0 if function in ("count", "sum") else None
            continue
        state = merged.get(window)
        if state is None:
            lo = at_us - span + 1
            first = lo // g
            state = _empty(view)
            for tile in ordered:
                if first < tile < last:
                    _merge(state, states[tile])
            for tile in {first, last}:
                inside = [e for e in edge_events.get(tile, ()) if lo <= e[0] <= at_us]
                if inside:
                    _merge(state, summarize(view, inside))
            merged[window] = state
        values[name] = _value(function, state, index)
    return values


# ---------------------------------------------------------------------- reads


def read_tiled(
    store: object,
    views: Sequence[TiledView],
    keys: Sequence[str],
    at: datetime,
) -> dict[str, dict[str, dict[str, Any] | None]]:
    """Each key's features of each tiled view at ``at``, with one store read.

    A view of a key for which the store holds no tile in the read's range is None (the
    caller decides between "missing" and its stored snapshot).
    """
    if not views:
        return {}
    at_us = (at.astimezone(UTC) - _EPOCH) // _US
    ranges = [view.range_at(at_us) for view in views]
    entity = views[0].entity
    found = tile_table(store).read(entity, keys, ranges)
    out: dict[str, dict[str, dict[str, Any] | None]] = {}
    for key in keys:
        per_view = found.get(key, {})
        answer: dict[str, dict[str, Any] | None] = {}
        for view in views:
            tiles = per_view.get(view.name)
            if not tiles or not tiles[0]:
                answer[view.name] = None
                continue
            raw_states, raw_events = tiles
            states = {t: decode(s) for t, s in raw_states.items()}
            events = {t: decode(e) for t, e in raw_events.items() if e}
            answer[view.name] = window_values(view, states, events, at_us=at_us)
        out[key] = answer
    return out


# ---------------------------------------------------------------------- writes


def events_of(view: TiledView, table: pa.Table) -> Iterator[tuple[str, Event]]:
    """``(entity key, event)`` for each row of ``table`` (the source's columns: the entity
    keys, the timestamp, the view's inputs); rows without a time or a key are skipped, as
    offline. A naive timestamp is UTC; text timestamps are parsed as ISO 8601. Keys are the
    key columns' text joined by ``|``.

    >>> view = TiledView("v", "e", ("id",), "ts", 0, 10, ("x",), (True,), (True,), ())
    >>> list(events_of(view, pa.table({"id": [7, None], "ts": [datetime(1970, 1, 1, tzinfo=UTC)] * 2,
    ...                                "x": [1.5, 2.0]})))
    [('7', [0, 1.5])]
    """
    missing = [c for c in (*view.keys, view.timestamp, *view.inputs) if c not in table.schema.names]
    if missing:
        raise FeatureError(
            f"events for tiled view `{view.name}` lack the column(s) {', '.join(missing)}",
            fix="pass the source's rows with its entity keys, timestamp and aggregated columns",
        )
    times = _epoch_us(table.column(view.timestamp))
    keys = _key_texts(table, view.keys)
    inputs = [_plain_values(table.column(c)) for c in view.inputs]
    after = view.available_after_us
    for key, ts, *values in zip(keys, times, *inputs, strict=True):
        if ts is not None and key is not None:
            yield key, [ts + after, *values]


def group_events(view: TiledView, table: pa.Table) -> dict[tuple[str, int], list[Event]]:
    """The events of ``table`` (:func:`events_of`) per ``(entity key, tile)``, each tile's
    sorted by known time: what :func:`apply_grouped` adds."""
    return _grouped(view, events_of(view, table))


def apply_events(store: object, view: TiledView, table: pa.Table) -> int:
    """Add the events of ``table`` (the source's rows) to ``view``'s tiles; return how many.

    Not idempotent (see the module docstring): the caller applies each event once.
    """
    return apply_grouped(store, view, group_events(view, table))


def apply_grouped(
    store: object,
    view: TiledView,
    grouped: dict[tuple[str, int], list[Event]],
    *,
    stored: Mapping[tuple[str, int], tuple[bytes, bytes]] | None = None,
) -> int:
    """:func:`apply_events` of events already grouped (:func:`group_events`); return how many.

    ``stored``: the tiles' stored ``(state, events)`` as the caller just read them
    (:meth:`TileTable.stored`; a tile absent: no event yet), sparing a second read; None
    reads them here. The work per tile is the new events' (their state merged into the
    stored one, their list appended to the stored list's JSON), not the tile's: a tile that
    gathers events batch after batch costs no more to update as it fills.
    """
    tiles = tile_table(store)
    pairs = list(grouped)
    added = 0
    for start in range(0, len(pairs), WRITE_CHUNK):
        chunk = pairs[start : start + WRITE_CHUNK]
        found = tiles.stored(view.entity, view.name, chunk) if stored is None else stored
        rows = []
        for pair in chunk:
            new = grouped[pair]
            state = summarize(view, new)
            encoded = dumps(new)
            before = found.get(pair)
            if before is not None:
                merged: State = decode(before[0])
                _merge(merged, state)
                state = merged
                encoded = _concat(before[1], encoded)
            rows.append((pair[0], pair[1], dumps(state), encoded))
            added += len(new)
        tiles.put(view.entity, view.name, rows)
    return added


def _concat(stored: bytes, new: bytes) -> bytes:
    """Two JSON lists (compact, as :func:`dumps` writes them) as one: ``stored`` then ``new``.

    >>> _concat(b"[[1,2.0]]", b"[[3,null],[4,1]]"), _concat(b"[]", b"[[3,null]]")
    (b'[[1,2.0],[3,null],[4,1]]', b'[[3,null]]')
    """
    if stored == b"[]":
        return new
    if new == b"[]":
        return stored
    return stored[:-1] + b"," + new[1:]


def replace_tiles(
    store: object, view: TiledView, events: Iterable[tuple[str, Event]], *, since_us: int | None
) -> int:
    """Replace every tile of ``view`` by the tiles of ``events``; return the tiles written.

    ``since_us``: keep only the tiles that end after it (None: all of them).
    """
    grouped = _grouped(view, events)
    tiles = tile_table(store)
    tiles.clear(view.entity, view.name)
    first = None if since_us is None else since_us // view.tile_us
    rows = (
        (key, tile, dumps(summarize(view, found)), dumps(found))
        for (key, tile), found in grouped.items()
        if first is None or tile >= first
    )
    return tiles.put(view.entity, view.name, rows)


def _grouped(
    view: TiledView, events: Iterable[tuple[str, Event]]
) -> dict[tuple[str, int], list[Event]]:
    grouped: dict[tuple[str, int], list[Event]] = {}
    g = view.tile_us
    for key, event in events:
        pair = (key, event[0] // g)
        found = grouped.get(pair)
        if found is None:
            grouped[pair] = [event]
        else:
            found.append(event)
    for found in grouped.values():
        if len(found) > 1:
            found.sort(key=_KNOWN)
    return grouped


def _key_texts(table: pa.Table, keys: Sequence[str]) -> list[str | None]:
    """Each row's entity key: the key columns' text joined by ``|`` (None when one is null);
    integer and text columns are converted by Arrow at once, others by ``str``."""
    parts: list[Any] = []  # string arrays (chunked or not)
    for name in keys:
        column = table.column(name)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
            parts.append(pc.cast(column, pa.string()))
        else:
            texts = [None if v is None else str(v) for v in column.to_pylist()]
            parts.append(pa.array(texts, pa.string()))
    if len(parts) == 1:
        return list(parts[0].to_pylist())
    return list(pc.binary_join_element_wise(*parts, "|").to_pylist())


_PLAIN = (pa.bool_(), pa.float32(), pa.float64(), pa.string(), pa.large_string(), pa.null())


def _plain_values(column: pa.ChunkedArray[Any]) -> list[Any]:
    """The column's values as :func:`_plain` makes them (plain types as Arrow gives them)."""
    values = column.to_pylist()
    if pa.types.is_integer(column.type) or column.type in _PLAIN:
        return values
    return [_plain(v) for v in values]


def _epoch_us(column: pa.ChunkedArray[Any]) -> list[int | None]:
    kind = column.type
    if pa.types.is_timestamp(kind):
        as_us = pc.cast(column, pa.timestamp("us", tz=kind.tz))
        return list(pc.cast(as_us, pa.int64()).to_pylist())
    if pa.types.is_date(kind):
        return [None if d is None else _day_us(d) for d in column.to_pylist()]
    out: list[int | None] = []
    for value in column.to_pylist():
        if value is None:
            out.append(None)
            continue
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        out.append((moment - _EPOCH) // _US)
    return out


def _day_us(day: date) -> int:
    return (datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH) // _US


def _plain(value: Any) -> Any:
    """JSON-able scalars, as materialization stores them: datetimes as text, decimals as
    floats."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)
