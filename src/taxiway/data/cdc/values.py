"""Column values of a CDC source, from PostgreSQL's text form to Arrow.

The initial snapshot (``SELECT col::text``) and the replication stream (pgoutput's text
values) give every value as the type's text output, read with ``TimeZone=UTC`` and
``DateStyle=ISO``; both go through this one conversion, so a row reads the same from either:

- ``int2``/``int4``/``int8``/``oid`` → int64; ``float4``/``float8``/``numeric`` → float64
  (the offline reader's float for unconstrained ``numeric``); ``bool`` → bool;
- ``timestamptz`` → ``timestamp[us, UTC]``; ``timestamp`` → ``timestamp[us]`` read as UTC;
  ``date`` → date32; ``'infinity'`` and ``'NaN'`` times are null;
- every other type (text, uuid, json, arrays...) → string (its text form).

>>> table = typed_table([("id", 23), ("at", 1184), ("x", 1700)],
...                     [{"id": "1", "at": "2026-03-01 10:00:00+00", "x": "2.5"}])
>>> table.column("at").type, table.to_pylist()[0]["x"]
(TimestampType(timestamp[us, tz=UTC]), 2.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

__all__ = ["arrow_type", "typed_table"]

_INTS = {20, 21, 23, 26}
_FLOATS = {700, 701, 1700}
_BOOL = 16
_TIMESTAMPTZ = 1184
_TIMESTAMP = 1114
_DATE = 1082


def arrow_type(type_oid: int) -> pa.DataType:
    """The Arrow type a column of PostgreSQL type ``type_oid`` is read as."""
    if type_oid in _INTS:
        return pa.int64()
    if type_oid in _FLOATS:
        return pa.float64()
    if type_oid == _BOOL:
        return pa.bool_()
    if type_oid == _TIMESTAMPTZ:
        return pa.timestamp("us", tz="UTC")
    if type_oid == _TIMESTAMP:
        return pa.timestamp("us")
    if type_oid == _DATE:
        return pa.date32()
    return pa.string()


def _moment(text: str, aware: bool) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:  # infinity, -infinity, BC dates
        return None
    if not aware:
        return moment.replace(tzinfo=None)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _values(type_oid: int, texts: list[Any]) -> pa.Array[Any]:
    kind = arrow_type(type_oid)
    if type_oid in _INTS:
        return pa.array([None if t is None else int(t) for t in texts], kind)
    if type_oid in _FLOATS:
        return pa.array([None if t is None else float(t) for t in texts], kind)
    if type_oid == _BOOL:
        return pa.array([None if t is None else t == "t" for t in texts], kind)
    if type_oid in (_TIMESTAMPTZ, _TIMESTAMP):
        aware = type_oid == _TIMESTAMPTZ
        return pa.array([None if t is None else _moment(t, aware) for t in texts], kind)
    if type_oid == _DATE:
        return pa.array([None if t is None else _day(t) for t in texts], kind)
    return pa.array(texts, kind)


def typed_table(
    columns: Sequence[tuple[str, int]],
    rows: Sequence[Mapping[str, Any]],
    extra: Mapping[str, pa.Array[Any]] | None = None,
) -> pa.Table:
    """``rows`` (column → text or None) as an Arrow table of ``columns`` (name, type OID),
    followed by the ``extra`` columns."""
    arrays = {name: _values(oid, [row.get(name) for row in rows]) for name, oid in columns}
    arrays.update(extra or {})
    return pa.table(arrays)
