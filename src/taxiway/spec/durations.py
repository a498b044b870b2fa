"""Durations as people write them in a spec: ``30d``, ``3h``, ``15m``, ``1h30m``, ``2w``.

>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
>>> parse_duration("30d").days
30
>>> format_duration(parse_duration("90m"))
'1h30m'
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|w|d|h|m|s))+")
EXPECTED = "a duration such as 30d, 12h, 15m, 90s or 1h30m (units: w, d, h, m, s, ms)"


def parse_duration(value: object) -> timedelta:
    """Parse ``value`` into a :class:`~datetime.timedelta`; raise ``ValueError`` if it is not one.

    A bare ``0`` means no delay. Numbers without a unit are refused, because "30" could mean
    seconds or days and a wrong guess silently shifts every feature.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {EXPECTED}")
    if isinstance(value, int | float) and value == 0:
        return timedelta(0)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not {EXPECTED}")
    text = value.strip().replace(" ", "")
    if text == "0":
        return timedelta(0)
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{value!r} is not {EXPECTED}")
    total = timedelta(0)
    for number, unit in _PART.findall(text):
        total += float(number) * _UNITS[unit]
    return total


def format_duration(delta: timedelta) -> str:
    """The shortest spec form of ``delta`` (the inverse of :func:`parse_duration`)."""
    if delta == timedelta(0):
        return "0"
    remaining = delta
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    if remaining:
        parts.append(f"{remaining // _UNITS['ms']}ms")
    return "".join(parts)
