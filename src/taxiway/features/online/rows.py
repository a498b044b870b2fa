"""A view's computed values as online store rows: the key encoding, plain values, and an Arrow
batch as ``(key, ViewValues)`` pairs.

Materialization turns the rows of one view (its entity's key columns, the view's features, then
the event time) into what a store writes, in this process for every store and on Spark's
executors for Redis (:mod:`taxiway.features.online.redis_spark`): one function, so both write
the same keys and values. It imports nothing but the standard library and taxiway's store
protocol, so an executor imports little.

>>> import pyarrow as pa
>>> from datetime import datetime, UTC
>>> batch = pa.RecordBatch.from_pydict({"k": [7], "v__n": [3], "t": [None]})
>>> as_of = datetime(2026, 1, 1, tzinfo=UTC)
>>> [(key, row.values) for key, row in view_rows(batch, "v", ["v__n"], 1, as_of)]
[('7', {'v__n': 3})]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taxiway.features.online.base import ViewValues

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["encode_key", "plain_value", "view_rows"]


def encode_key(values: tuple[Any, ...]) -> str:
    """The store key of an entity: its key values joined by ``|``.

    >>> encode_key((123,)), encode_key(("EWR", 7))
    ('123', 'EWR|7')
    """
    return "|".join(str(v) for v in values)


def plain_value(value: Any) -> Any:
    """JSON-able scalars only: datetimes and decimals become text and floats."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def view_rows(
    batch: pa.RecordBatch, view: str, names: Sequence[str], width: int, as_of: datetime
) -> Iterator[tuple[str, ViewValues]]:
    """The ``(key, values)`` of each row of ``batch``: its first ``width`` columns are the
    entity's keys, then the features ``names`` of ``view``, then the event time (a naive one
    taken as UTC); every value computed as of ``as_of``."""
    for row in batch.to_pylist():
        values = list(row.values())
        event_time = values[-1]
        if isinstance(event_time, datetime) and event_time.tzinfo is None:
            event_time = event_time.replace(tzinfo=UTC)
        yield (
            encode_key(tuple(values[:width])),
            ViewValues(
                view=view,
                values={n: plain_value(v) for n, v in zip(names, values[width:-1], strict=True)},
                event_time=event_time,
                as_of=as_of,
            ),
        )
