"""Outcomes joined to the predictions they judge.

**The rule.** An outcome that names a ``request_id`` judges that prediction and no other: if
the id is not among the predictions (an older log, another version), the outcome is unjoined,
never matched to a neighbour by unit. An outcome with only a ``unit`` judges that unit's latest
prediction at or before the outcome's ``timestamp`` (among predictions of the same instant,
the last logged). When several outcomes judge one prediction, the last in the given order wins
(a correction overrides; :func:`~taxiway.monitoring.quality_outcomes.read_outcomes` orders by
``received_at``) and the others count as ``duplicates``.

Inputs are lists of records (dicts, as read from the logs) or columns (a mapping of key to a
list or array), so a million predictions join in numpy plus one dict lookup per outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter, is_not
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Joined", "Records", "column", "epoch", "epochs", "join_outcomes"]

Records = Sequence[Mapping[str, Any]] | Mapping[str, Any]
"""Records as dicts, or columns: key -> list or array."""
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Joined:
    """Which prediction each joined outcome judges (row numbers into the inputs)."""

    prediction: Ints
    outcome: Ints
    via_unit: npt.NDArray[np.bool_]
    """Per pair: joined by unit and time (else by request_id)."""
    unjoined: int
    duplicates: int
    bad_timestamps: int

    @property
    def by_request_id(self) -> int:
        """Pairs joined by request_id."""
        return int(np.count_nonzero(~self.via_unit))

    @property
    def by_unit(self) -> int:
        """Pairs joined by unit and time."""
        return int(np.count_nonzero(self.via_unit))


def join_outcomes(predictions: Records, outcomes: Records) -> Joined:
    """Pair outcomes with predictions (see the module's rules); keys ``request_id``, ``unit``
    and ``ts`` of predictions, ``request_id``, ``unit`` and ``timestamp`` of outcomes.

    >>> preds = [{"request_id": "a", "unit": "u1", "ts": "2026-12-06T05:00:00+00:00"},
    ...          {"request_id": "b", "unit": "u1", "ts": "2026-12-06T05:10:00+00:00"}]
    >>> outs = [{"request_id": "b"}, {"request_id": "zz", "unit": "u1"},
    ...         {"unit": "u1", "timestamp": "2026-12-06T05:05:00+00:00"}]
    >>> j = join_outcomes(preds, outs)
    >>> list(zip(j.outcome.tolist(), j.prediction.tolist())), j.by_request_id, j.by_unit, j.unjoined
    ([(0, 1), (2, 0)], 1, 1, 1)
    """
    p_ids = column(predictions, "request_id")
    o_ids = column(outcomes, "request_id")
    index = dict(zip(p_ids, range(len(p_ids)), strict=True))  # a repeated id: the last wins
    index.pop(None, None)
    n = len(o_ids)  # map() over C callables: no Python frame per outcome
    by_id = np.fromiter(map(index.get, o_ids, repeat(-1, n)), np.int64, n)
    has_id = np.fromiter(map(is_not, o_ids, repeat(None, n)), bool, n)
    matched = np.where(has_id, by_id, -1)
    bad = 0
    unit_rows = np.flatnonzero(~has_id)
    if len(unit_rows):
        found, bad = _by_unit(predictions, outcomes, unit_rows)
        matched[unit_rows] = found
    rows = np.flatnonzero(matched >= 0)
    # several outcomes for one prediction: keep the last (np.unique keeps the first seen)
    last = rows[::-1][np.unique(matched[rows][::-1], return_index=True)[1]]
    last.sort()
    return Joined(
        prediction=matched[last],
        outcome=last.astype(np.int64),
        via_unit=~has_id[last],
        unjoined=len(o_ids) - len(rows),
        duplicates=len(rows) - len(last),
        bad_timestamps=bad,
    )


def _by_unit(predictions: Records, outcomes: Records, rows: Ints) -> tuple[Ints, int]:
    """For outcomes ``rows``: the row of their unit's latest prediction at or before their
    timestamp (-1 for none), and how many timestamps could not be read."""
    p_units = column(predictions, "unit")
    o_all = column(outcomes, "unit")
    o_units = [o_all[i] for i in rows.tolist()]
    codes = {unit: code for code, unit in enumerate(dict.fromkeys(p_units))}
    codes.pop(None, None)
    p_code = np.fromiter(map(codes.get, p_units, repeat(-1)), np.int64, len(p_units))
    o_code = np.fromiter(map(codes.get, o_units, repeat(-1)), np.int64, len(o_units))
    p_time = epochs(column(predictions, "ts"))
    o_time = epochs(column(outcomes, "timestamp"))[rows]
    bad = int(np.count_nonzero(np.isnan(o_time) & (o_code >= 0)))
    usable = np.flatnonzero((p_code >= 0) & ~np.isnan(p_time))
    if not len(usable):
        return np.full(len(rows), -1, dtype=np.int64), bad
    # one integer key (unit, time rank): a sorted search finds the latest at or before
    ranks = np.unique(np.r_[p_time[usable], o_time[~np.isnan(o_time)]])
    span = len(ranks) + 1
    p_key = p_code[usable] * span + np.searchsorted(ranks, p_time[usable])
    order = np.lexsort((usable, p_key))  # equal keys: the last logged sorts last
    p_key, p_row = p_key[order], usable[order]
    o_ok = (o_code >= 0) & ~np.isnan(o_time)
    o_key = o_code * span + np.searchsorted(ranks, np.where(o_ok, o_time, 0.0))
    at = np.searchsorted(p_key, o_key, side="right") - 1
    hit = o_ok & (at >= 0)
    hit[hit] = p_key[at[hit]] // span == o_code[hit]
    return np.where(hit, p_row[np.maximum(at, 0)], -1), bad


def column(records: Records, key: str) -> list[Any] | npt.NDArray[Any]:
    """One key's values, from columns or from dicts (a missing key: all None).

    >>> column([{"a": 1}, {}], "a"), column({"a": [1, 2]}, "b")
    ([1, None], [None, None])
    """
    if isinstance(records, Mapping):
        values = records.get(key)
        if values is None:
            return [None] * _length(records)
        return values if isinstance(values, np.ndarray) else list(values)
    return [r.get(key) for r in records]


def _length(columns: Mapping[str, Any]) -> int:
    return max((len(v) for v in columns.values() if v is not None), default=0)


def epochs(values: list[Any] | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Seconds since the epoch of ISO 8601 strings, datetimes or numbers (NaN if unreadable;
    a time without a zone is taken as UTC).

    >>> epochs(["1970-01-01T00:01:00+00:00", "1970-01-01T00:00:30"]).tolist()
    [60.0, 30.0]
    >>> epochs(["1970-01-01T00:00:01Z", None, 5]).tolist()
    [1.0, nan, 5.0]
    """
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return values.astype("datetime64[us]").astype(np.int64) / 1e6
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(np.float64)
    try:  # the log's case, all ISO strings with a zone: C calls only
        parsed = list(map(datetime.fromisoformat, values))
        if None not in map(attrgetter("tzinfo"), parsed):
            return np.fromiter(map(datetime.timestamp, parsed), np.float64, len(parsed))
    except (TypeError, ValueError):
        pass
    return np.fromiter((epoch(v) for v in values), np.float64, len(values))


def epoch(value: Any) -> float:
    """Seconds since the epoch of one ISO 8601 string, datetime or number (NaN if unreadable).

    >>> epoch(datetime(1970, 1, 1, 0, 2, tzinfo=UTC)), epoch("soon")
    (120.0, nan)
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return float("nan")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")
