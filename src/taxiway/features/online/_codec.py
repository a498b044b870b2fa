"""How every online store encodes feature values and times, so all backends agree byte for byte.

Values are compact UTF-8 JSON: written with orjson when it is installed (about 15x faster to
write and 4x faster to read than the standard library), else with :mod:`json` in the same
form, so a store written with one is read with the other. JSON has no NaN or infinity: a
non-finite float is stored as ``None`` (a missing value) by both. Numpy scalars are stored
as their Python values. Times are epoch seconds (float, microsecond-exact for present-day
dates); a naive datetime is taken as UTC, the way the rest of taxiway reads it, and every
time comes back timezone-aware UTC.

>>> encode_record({"v__x": float("nan"), "v__name": "Zoë", "v__ok": True}, None, 0.0)
b'{"values":{"v__x":null,"v__name":"Zo\\xc3\\xab","v__ok":true},"event_time":null,"as_of":0.0}'
>>> encode_record({"v__n": 3}, None, 1736164800.5)
b'{"values":{"v__n":3},"event_time":null,"as_of":1736164800.5}'
>>> encode_views({"v": record({"v__n": 3}, None, 1736164800.5)})
b'{"v":{"values":{"v__n":3},"event_time":null,"as_of":1736164800.5}}'
>>> decode(b'{"v__n":3,"v__x":null}')
{'v__n': 3, 'v__x': None}
>>> from_epoch(to_epoch(datetime(2025, 1, 6, 12, 0, 0, 123456)))
datetime.datetime(2025, 1, 6, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from taxiway.errors import FeatureError
from taxiway.features.online.base import ViewValues

__all__ = [
    "CODEC",
    "Moments",
    "Records",
    "check_entity",
    "decode",
    "dumps",
    "encode_record",
    "encode_views",
    "from_epoch",
    "record",
    "to_epoch",
    "view_values",
    "views_of",
]

# Every view of one key as stored, decoded: ``{view: {"values", "event_time", "as_of"}}`` (times
# in epoch seconds). What ``read_records`` of a store returns per key: a lookup judges status
# and age from these numbers without building a datetime or a ViewValues per view.
Records = dict[str, dict[str, Any]]

# An entity name is a namespace segment of Redis keys (`prefix:entity:key`) and part of a SCAN
# glob; refusing these characters in every backend keeps keys unambiguous and stores alike.
_ENTITY_FORBIDDEN = frozenset(":*?[]\\")


def _plain(value: object) -> object:
    """A numpy scalar as its Python value (the ``default=`` hook); anything else is refused."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, datetime):
        plain = item()
        if isinstance(plain, float) and not math.isfinite(plain):
            return None
        if plain is None or isinstance(plain, bool | int | float | str):
            return plain
    raise TypeError(f"{type(value).__name__} is not None, bool, int, float or str")


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with NaN and infinities as ``None``, the way orjson writes them."""
    for value in values.values():
        if isinstance(value, float) and not math.isfinite(value):
            return {
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in values.items()
            }
    return values


def _json_dumps(obj: object) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_plain)
    return text.encode("utf-8")


try:
    import orjson
except ImportError:  # orjson comes with the `server` extra; the standard library is the floor
    CODEC = "json"
    _dumps: Callable[[object], bytes] = _json_dumps
    _finite_or_same: Callable[[dict[str, Any]], dict[str, Any]] = _finite
    decode: Callable[[bytes], Any] = json.loads
else:
    CODEC = "orjson"
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

    def _orjson_dumps(obj: object) -> bytes:
        return orjson.dumps(obj, default=_plain, option=_OPTIONS)

    def _same(values: dict[str, Any]) -> dict[str, Any]:
        return values  # orjson already writes NaN and infinities as null

    _dumps = _orjson_dumps
    _finite_or_same = _same
    decode = orjson.loads


def dumps(obj: object) -> bytes:
    """``obj`` as compact UTF-8 JSON, the way every store writes it (tiles use it)."""
    return _dumps(obj)


def _encode(obj: object, *values: dict[str, Any]) -> bytes:
    try:
        return _dumps(obj)
    except (TypeError, ValueError) as error:
        bad = next((k for each in values for k, v in each.items() if not _storable(v)), None)
        where = f"feature {bad!r}" if bad is not None else "a feature value"
        raise FeatureError(
            f"{where} cannot be stored online: {error}",
            fix="materialize features as None, bool, int, float or str (64-bit integers)",
        ) from None


def _storable(value: object) -> bool:
    """Whether both codecs store ``value``: a scalar (64-bit if an int) or a numpy scalar."""
    if value is None or isinstance(value, bool | float | str):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    try:
        _plain(value)
    except TypeError:
        return False
    return True


def record(values: dict[str, Any], event_time: float | None, as_of: float) -> dict[str, Any]:
    """One view of one key, ``{"values", "event_time", "as_of"}``, ready to encode."""
    return {"values": _finite_or_same(values), "event_time": event_time, "as_of": as_of}


def encode_record(values: dict[str, Any], event_time: float | None, as_of: float) -> bytes:
    """:func:`record` as JSON: one view of one key, self-contained (a Redis hash field)."""
    return _encode(record(values, event_time, as_of), values)


def encode_views(records: dict[str, dict[str, Any]]) -> bytes:
    """Every view of one key, ``{view: record}``, as JSON (a SQLite row).

    Each record is what :func:`encode_record` writes for that view, so a key's views read
    the same from either backend.
    """
    return _encode(records, *(r["values"] for r in records.values()))


def view_values(view: str, data: dict[str, Any], moments: Moments) -> ViewValues:
    """The :class:`ViewValues` of view ``view`` from its decoded :func:`record`."""
    event_time = data["event_time"]
    return ViewValues(
        view,
        data["values"],
        None if event_time is None else moments[event_time],
        moments[data["as_of"]],
    )


def views_of(records: Records, moments: Moments) -> list[ViewValues]:
    """The :class:`ViewValues` of one key's ``records``, in view name order.

    >>> [v.view for v in views_of({"b": record({}, None, 0.0), "a": record({}, 0.0, 0.0)}, Moments())]
    ['a', 'b']
    """
    return [view_values(view, records[view], moments) for view in sorted(records)]


def to_epoch(moment: datetime) -> float:
    """``moment`` in epoch seconds; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    """The aware UTC datetime ``seconds`` after the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


class Moments(dict[float, datetime]):
    """Epoch seconds to aware datetimes, each converted once: the rows of one read mostly
    share their ``as_of`` (one materialization run), so a lookup replaces most conversions.

    >>> moments = Moments()
    >>> moments[0.0] is moments[0.0], moments[0.0].isoformat()
    (True, '1970-01-01T00:00:00+00:00')
    """

    def __missing__(self, seconds: float) -> datetime:
        moment = self[seconds] = datetime.fromtimestamp(seconds, UTC)
        return moment


def check_entity(entity: str) -> str:
    """``entity`` if it can name a namespace in every store; else :class:`FeatureError`."""
    if not entity or not _ENTITY_FORBIDDEN.isdisjoint(entity):
        raise FeatureError(
            f"entity name {entity!r} cannot name an online store namespace",
            fix="name entities with letters, digits, '_', '-' or '.' "
            "(not empty, and none of : * ? [ ] \\)",
        )
    return entity
