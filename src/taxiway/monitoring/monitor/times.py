"""Times as the log writes them: ISO 8601, taken as UTC without a zone."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["aware", "parse_time"]


def parse_time(text: str) -> datetime:
    """An ISO 8601 time, UTC unless it says; the earliest time when it is not one.

    >>> parse_time("2026-12-06T05:00").isoformat(), parse_time("soon").year
    ('2026-12-06T05:00:00+00:00', 1)
    """
    try:
        return aware(datetime.fromisoformat(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def aware(t: datetime) -> datetime:
    """``t`` with UTC as its zone when it has none.

    >>> aware(datetime(2026, 12, 6)).tzinfo
    datetime.timezone.utc
    """
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
