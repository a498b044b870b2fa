"""Check a batch of a stream source's JSON events: each event valid or set aside with its reason.

An event is valid when its body is a JSON object, it has an id (the source's ``event_id``
field, else the message's ``Nats-Msg-Id`` header), a ``timestamp`` field holding an ISO 8601
time (naive times are UTC), a non-null value for each required field (the entity keys of the
views over the source), and it passes every row rule of the source's contract (types,
required, enum, ranges, patterns, row-level quality rules; the contract's values are checked
on their text, so ``"amount": "abc"`` fails ``amount.type``). Uniqueness rules are not
checked per event: the event id de-duplicates the stream. The consumer and the HTTP push
endpoint use this same check, so both refuse the same events with the same reasons.

Valid events come back as one Arrow table: the timestamp as ``timestamp[us, UTC]``, contract
columns cast to their logical type, other fields typed from their JSON values (bool, int64,
double, else text; objects and arrays as JSON text).

>>> from taxiway.spec.models import NatsSource
>>> spec = NatsSource(kind="nats", url="nats://127.0.0.1:4222", subject="shop.orders",
...                   stream="ORDERS", durable="taxiway", timestamp="ts", history="/tmp/h")
>>> checked = check_events("orders", spec, None, [
...     ("a", b'{"ts": "2026-01-01T10:00:00Z", "customer": 7, "amount": 5.5}'),
...     ("b", b'{"customer": 7}'),
...     (None, b'[1, 2]'),
... ], required=("customer",))
>>> checked.ids, checked.rejected
(['a'], [(1, 'ts: the event has no `ts` (its timestamp)'), (2, 'the body is not a JSON object')])
>>> checked.table.column("amount").to_pylist()
[5.5]
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from taxiway.data.contracts.families import CAST, expected_family
from taxiway.data.contracts.model import Contract
from taxiway.data.contracts.rules import compile_rules
from taxiway.engines.duckdb import connect, quote_identifier, quote_literal
from taxiway.spec.models import NatsSource

__all__ = ["CheckedEvents", "check_events", "event_problems"]

TIME = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class CheckedEvents:
    """A batch after the check: the valid events (``table``, one id each in ``ids``) and the
    rejected ones as ``(index in the batch, reason)``."""

    table: pa.Table
    ids: list[str]
    rejected: list[tuple[int, str]] = field(default_factory=list)


def check_events(
    name: str,
    spec: NatsSource,
    contract: Contract | None,
    events: Sequence[tuple[str | None, bytes]],
    *,
    required: Sequence[str] = (),
    con: duckdb.DuckDBPyConnection | None = None,
) -> CheckedEvents:
    """Check ``(header id or None, body)`` events of source ``name`` (the module's rules).

    The contract's rules and casts run in one query on ``con``; without it, on a connection
    opened for this call (a caller checking batch after batch passes its own: opening one
    costs more than checking 500 events)."""
    rejected: list[tuple[int, str]] = []
    kept: list[tuple[int, str, dict[str, Any]]] = []
    for index, (header_id, body) in enumerate(events):
        parsed, reason = _parse(spec, body, header_id, required)
        if parsed is None:
            rejected.append((index, reason))
        else:
            kept.append((index, *parsed))
    cast: dict[str, pa.Array[Any]] = {}
    if contract is not None:
        rows = [row for _, _, row in kept]
        if con is None:
            with connect(threads=1) as own:
                reasons, cast = _contract_pass(name, spec, contract, rows, own)
        else:
            reasons, cast = _contract_pass(name, spec, contract, rows, con)
        if any(reasons):
            mask = pa.array([not reason for reason in reasons], pa.bool_())
            cast = {column: values.filter(mask) for column, values in cast.items()}
            rejected += [(entry[0], r) for entry, r in zip(kept, reasons, strict=True) if r]
            kept = [entry for entry, r in zip(kept, reasons, strict=True) if not r]
    rejected.sort()
    rows = [row for _, _, row in kept]
    return CheckedEvents(_typed(spec, contract, rows, cast), [i for _, i, _ in kept], rejected)


def event_problems(
    name: str,
    spec: NatsSource,
    contract: Contract | None,
    event: Any,
    *,
    required: Sequence[str] = (),
) -> list[str]:
    """The reasons one already-parsed event is refused (empty when valid)."""
    body = orjson.dumps(event) if isinstance(event, dict) else b"null"
    checked = check_events(name, spec, contract, [("-", body)], required=required)
    return [reason for _, reason in checked.rejected]


def _parse(
    spec: NatsSource, body: bytes, header_id: str | None, required: Sequence[str]
) -> tuple[tuple[str, dict[str, Any]] | None, str]:
    try:
        row = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return None, f"the body is not JSON: {error}"
    if not isinstance(row, dict):
        return None, "the body is not a JSON object"
    if spec.event_id is not None:
        value = row.get(spec.event_id)
        if value is None or value == "":
            return None, f"{spec.event_id}: the event has no id in `{spec.event_id}`"
        event_id = str(value)
    elif header_id:
        event_id = header_id
    else:
        return None, "no event id: publish with a Nats-Msg-Id header or declare `event_id:`"
    ts = spec.timestamp
    assert ts is not None  # the spec requires it  # nosec B101
    if row.get(ts) is None:
        return None, f"{ts}: the event has no `{ts}` (its timestamp)"
    moment = _time(row[ts])
    if moment is None:
        return None, f"{ts}: {row[ts]!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)"
    row[ts] = moment
    for column in required:
        if row.get(column) is None:
            return None, f"{column}: the event has no `{column}` (a key of the views over it)"
    return (event_id, row), ""


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return orjson.dumps(value).decode()


def _contract_pass(
    name: str,
    spec: NatsSource,
    contract: Contract,
    rows: list[dict[str, Any]],
    con: duckdb.DuckDBPyConnection,
) -> tuple[list[str], dict[str, pa.Array[Any]]]:
    """In one DuckDB query over the events' values as text: per row, the failed row rules of
    ``contract`` as ``rule: reason; ...`` ('' when none), and each contract column of a
    castable family (but the timestamp) cast as DuckDB casts it."""
    columns = [p.name for p in contract.table.properties]
    plan = compile_rules(contract, dict.fromkeys(columns, "VARCHAR"), source=name)
    checks = [r for r in plan.rules if r.row_check is not None]
    families = {p.name: expected_family(p) for p in contract.table.properties}
    casts = [c for c in columns if c != spec.timestamp and families[c] in CAST]
    table = pa.table({c: _texts(rows, c) for c in columns})
    reasons = ", ".join(
        f"CASE WHEN NOT coalesce(({r.row_check}), FALSE) "
        f"THEN {quote_literal(r.id + ': ' + r.reason)} END"
        for r in checks
    )
    selected = [f"concat_ws('; ', {reasons})" if checks else "''"]
    selected += [_cast_sql(quote_identifier(c), CAST[str(families[c])]) for c in casts]
    con.register("__tw_events", table)
    try:
        query = f"SELECT {', '.join(selected)} FROM __tw_events"  # nosec B608
        found = con.sql(query).to_arrow_table()
    finally:
        con.unregister("__tw_events")
    found_reasons = [str(reason or "") for reason in found.column(0).to_pylist()]
    cast = {c: found.column(i + 1).combine_chunks() for i, c in enumerate(casts)}
    return found_reasons, cast


def _texts(rows: list[dict[str, Any]], column: str) -> pa.Array[Any]:
    """Column ``column`` of ``rows`` as text, as :func:`_text` writes each value (a column of
    text, or of whole numbers, converted by Arrow at once; of numbers and booleans, written by
    one ``orjson.dumps`` of the list; of times, by ``isoformat``).

    >>> _texts([{"a": 7}, {}, {"a": -2}], "a").to_pylist()
    ['7', None, '-2']
    >>> _texts([{"a": 1.5}, {"a": "x"}, {"a": True}], "a").to_pylist()
    ['1.5', 'x', 'true']
    >>> _texts([{"a": 1.5}, {}, {"a": False}, {"a": 3}, {"a": 1e20}], "a").to_pylist()
    ['1.5', None, 'false', '3', '1e+20']
    """
    values = [row.get(column) for row in rows]
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= {str}:
        return pa.array(values, pa.string())
    if kinds == {int}:  # whole numbers: as orjson writes them
        with contextlib.suppress(pa.ArrowInvalid, OverflowError):
            return pa.array(values, pa.int64()).cast(pa.string())
    if kinds <= _SCALARS:  # numbers and booleans: orjson writes them all at once, no comma inside
        with contextlib.suppress(TypeError):  # an integer beyond 64 bits: one by one, below
            texts = orjson.dumps(values).decode()[1:-1].split(",")
            return pa.array(
                [None if v is None else t for v, t in zip(values, texts, strict=True)], pa.string()
            )
    if kinds == {datetime}:  # the parsed timestamps
        return pa.array([None if v is None else v.isoformat() for v in values], pa.string())
    return pa.array([_text(v) for v in values], pa.string())


_SCALARS = {int, float, bool}


def _cast_sql(column: str, sql_type: str) -> str:
    """Text ``column`` cast as DuckDB casts it (the contract check passes or refuses it)."""
    if sql_type == "TIMESTAMP":
        return f"TRY_CAST({column} AS TIMESTAMPTZ) AT TIME ZONE {quote_literal('UTC')}"
    return f"TRY_CAST({column} AS {sql_type})"


def _typed(
    spec: NatsSource,
    contract: Contract | None,
    rows: list[dict[str, Any]],
    cast: dict[str, pa.Array[Any]],
) -> pa.Table:
    """The valid events as a typed table (the module's typing rules); ``cast`` holds the
    contract's columns already cast."""
    ts = spec.timestamp
    assert ts is not None  # nosec B101
    names = list(dict.fromkeys(chain.from_iterable(rows)))
    if contract is not None:
        for prop in contract.table.properties:
            if prop.name not in names:
                names.append(prop.name)
    arrays: dict[str, pa.Array[Any]] = {}
    for name in names:
        if name in cast:
            arrays[name] = cast[name]
            continue
        values = [row.get(name) for row in rows]
        arrays[name] = pa.array(values, TIME) if name == ts else _inferred(values)
    return pa.table(arrays) if names else pa.table({ts: pa.array([], TIME)})


def _inferred(values: list[Any]) -> pa.Array[Any]:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in present)
    if present and whole and all(-(2**63) <= v < 2**63 for v in present):
        return pa.array(values, pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([_text(v) for v in values], pa.string())
