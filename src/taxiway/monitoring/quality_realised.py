"""Realised quality: outcomes joined to the predictions they judge, and the metrics of the pairs.

**The outcomes log** is the folder ``outcomes`` beside the prediction log's, written by the
service's ``POST /v1/outcomes`` in the prediction log's file format (JSON lines in
``predictions-*.jsonl`` files; a torn last line, left by a killed writer, is skipped). Each
record: ``received_at``, ``request_id``, ``unit``, ``name``, ``value``, ``timestamp``.

**The join.** An outcome that names a ``request_id`` judges that prediction and no other: if
the id is not among the predictions (an older log, another version), the outcome is unjoined,
never matched to a neighbour by unit. An outcome with only a ``unit`` judges that unit's latest
prediction at or before the outcome's ``timestamp`` (among predictions of the same instant,
the last logged). When several outcomes judge one prediction, the last in the given order wins
(a correction overrides; :func:`read_outcomes` orders by ``received_at``) and the others count
as ``duplicates``.

**The metrics.** Classifiers (scores are probabilities of the positive class; an outcome's
value is ``True``/``False`` or 1/0): ROC AUC, log loss, ECE (15 equal-mass bins), accuracy at
0.5 (score > 0.5 is positive) and the positive rate. Regressors: MAE and RMSE. A pair that
cannot be scored is dropped and counted in ``problems`` under its reason (``non_binary_value``,
``not_a_number``, ``no_score``, ``score_out_of_range``, ``bad_timestamp``), never a crash.

Inputs are lists of records (dicts, as read from the logs) or columns (a mapping of key to a
list or array), so a million predictions join in numpy plus one dict lookup per outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter, is_not, itemgetter
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from taxiway.errors import MonitoringError
from taxiway.monitoring.quality_metrics import calibration_error, log_loss, roc_auc
from taxiway.monitoring.quality_reference import Task

__all__ = [
    "OUTCOME_GLOB",
    "Joined",
    "RealisedQuality",
    "join_outcomes",
    "read_outcomes",
    "realised",
]

OUTCOME_GLOB: Final = "predictions-*.jsonl"
"""The outcomes log's file names (the prediction log's format, written by the same code)."""

Records = Sequence[Mapping[str, Any]] | Mapping[str, Any]
"""Records as dicts, or columns: key -> list or array."""
Ints = npt.NDArray[np.int64]


def read_outcomes(folder: Path, name: str | None = None) -> list[dict[str, Any]]:
    """Every outcome record in ``folder`` (named ``name``, when given), by ``received_at``.

    Without ``name`` the log must hold a single outcome name: judging a model by a mix of
    outcomes would be meaningless.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "predictions-w1-20261206T050000-0000.jsonl").write_text(
    ...         '{"received_at": "2026-12-06T05:01:00+00:00", "request_id": "r1", '
    ...         '"unit": null, "name": "bought", "value": true, "timestamp": "x"}\\n{"recei')
    ...     [r["request_id"] for r in read_outcomes(Path(tmp), "bought")]
    ['r1']
    """
    if not folder.is_dir():
        raise MonitoringError(
            f"no outcomes log at {folder}",
            fix="pass the `outcomes` folder beside the prediction log's folder (the service "
            "creates it; outcomes arrive by POST /v1/outcomes)",
        )
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob(OUTCOME_GLOB)):
        records.extend(_read_lines(path.read_bytes()))
    if name is not None:
        records = [r for r in records if r.get("name") == name]
    else:
        names = {r.get("name") for r in records}
        if len(names) > 1:
            raise MonitoringError(
                f"the outcomes log holds several outcome names: {sorted(map(str, names))}",
                fix="name the outcome that judges this model (monitoring's outcome name)",
            )
    try:  # the log's ISO UTC strings sort as their times do
        records.sort(key=itemgetter("received_at"))
    except (KeyError, TypeError):
        records.sort(key=lambda r: str(r.get("received_at") or ""))
    return records


def _read_lines(data: bytes) -> list[dict[str, Any]]:
    """The complete JSON-object lines of a file; a torn or foreign line is skipped."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    try:  # one parse for the whole file; only a file with a torn line pays per line
        parsed = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:
        parsed = []
        for line in lines:
            try:
                parsed.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return [r for r in parsed if isinstance(r, dict)]


@dataclass(frozen=True)
class Joined:
    """Which prediction each joined outcome judges (row numbers into the inputs)."""

    prediction: Ints
    outcome: Ints
    by_request_id: int
    by_unit: int
    unjoined: int
    duplicates: int
    bad_timestamps: int


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
    p_ids = _column(predictions, "request_id")
    o_ids = _column(outcomes, "request_id")
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
        by_request_id=int(np.count_nonzero(has_id[last])),
        by_unit=int(np.count_nonzero(~has_id[last])),
        unjoined=len(o_ids) - len(rows),
        duplicates=len(rows) - len(last),
        bad_timestamps=bad,
    )


def _by_unit(predictions: Records, outcomes: Records, rows: Ints) -> tuple[Ints, int]:
    """For outcomes ``rows``: the row of their unit's latest prediction at or before their
    timestamp (-1 for none), and how many timestamps could not be read."""
    p_units = _column(predictions, "unit")
    o_all = _column(outcomes, "unit")
    o_units = [o_all[i] for i in rows.tolist()]
    codes: dict[Any, int] = {}
    for unit in p_units:
        if unit is not None and unit not in codes:
            codes[unit] = len(codes)
    p_code = np.fromiter(map(codes.get, p_units, repeat(-1)), np.int64, len(p_units))
    o_code = np.fromiter(map(codes.get, o_units, repeat(-1)), np.int64, len(o_units))
    p_time = _epochs(_column(predictions, "ts"))
    o_time = _epochs(_column(outcomes, "timestamp"))[rows]
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


@dataclass(frozen=True)
class RealisedQuality:
    """Metrics of the joined pairs, and how the join went."""

    task: Task
    rows: int
    joined: int
    unjoined: int
    by_request_id: int
    by_unit: int
    duplicates: int
    metrics: dict[str, float | None]
    problems: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


def realised(predictions: Records, outcomes: Records, task: Task) -> RealisedQuality:
    """Join ``outcomes`` to ``predictions`` and measure the pairs (``prediction`` is the score).

    >>> preds = {"request_id": list("abcde"), "prediction": [0.2, 0.7, 0.6, 0.9, 0.1]}
    >>> outs = {"request_id": list("abcde"), "value": [False, True, 0, "yes", 2]}
    >>> q = realised(preds, outs, "classification")
    >>> q.rows, q.joined, q.problems
    (3, 5, {'not_a_number': 1, 'non_binary_value': 1})
    >>> q.metrics["roc_auc"], round(q.metrics["accuracy"], 4)
    (1.0, 0.6667)
    >>> realised([{"request_id": "a", "prediction": 3.0}], [{"request_id": "a", "value": 2}],
    ...          "regression").metrics
    {'mae': 1.0, 'rmse': 1.0}
    """
    joined = join_outcomes(predictions, outcomes)
    scores = _numbers(_column(predictions, "prediction"), joined.prediction)
    values = _numbers(_column(outcomes, "value"), joined.outcome)
    problems: dict[str, int] = {}
    _count(problems, "bad_timestamp", joined.bad_timestamps)
    _count(problems, "no_score", np.count_nonzero(np.isnan(scores)))
    _count(problems, "not_a_number", np.count_nonzero(np.isnan(values)))
    keep = ~np.isnan(scores) & ~np.isnan(values)
    if task == "classification":
        binary = np.isin(values, (0.0, 1.0))
        _count(problems, "non_binary_value", np.count_nonzero(keep & ~binary))
        probability = (scores >= 0) & (scores <= 1)
        _count(problems, "score_out_of_range", np.count_nonzero(keep & binary & ~probability))
        keep &= binary & probability
        metrics = _classification(scores[keep], values[keep])
    elif task == "regression":
        metrics = _regression(scores[keep], values[keep])
    else:
        raise MonitoringError(
            f"unknown task {task!r}", fix="pass task='classification' or task='regression'"
        )
    return RealisedQuality(
        task=task,
        rows=int(keep.sum()),
        joined=len(joined.outcome),
        unjoined=joined.unjoined,
        by_request_id=joined.by_request_id,
        by_unit=joined.by_unit,
        duplicates=joined.duplicates,
        metrics=metrics,
        problems=problems,
    )


def _classification(
    s: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> dict[str, float | None]:
    return {
        "roc_auc": roc_auc(s, y),
        "log_loss": log_loss(s, y),
        "calibration_error": calibration_error(s, y),
        "accuracy": float(np.mean((s > 0.5) == (y == 1))) if len(y) else None,
        "positive_rate": float(y.mean()) if len(y) else None,
    }


def _regression(s: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> dict[str, float | None]:
    if not len(y):
        return {"mae": None, "rmse": None}
    errors = s - y
    return {"mae": float(np.mean(np.abs(errors))), "rmse": float(np.sqrt(np.mean(errors**2)))}


def _count(problems: dict[str, int], reason: str, n: int | np.integer[Any]) -> None:
    if n:
        problems[reason] = int(n)


def _column(records: Records, key: str) -> list[Any] | npt.NDArray[Any]:
    """One key's values, from columns or from dicts (a missing key: all None)."""
    if isinstance(records, Mapping):
        values = records.get(key)
        if values is None:
            return [None] * _length(records)
        return values if isinstance(values, np.ndarray) else list(values)
    return [r.get(key) for r in records]


def _length(columns: Mapping[str, Any]) -> int:
    return max((len(v) for v in columns.values() if v is not None), default=0)


def _numbers(values: list[Any] | npt.NDArray[Any], rows: Ints) -> npt.NDArray[np.float64]:
    """``values[rows]`` as floats (booleans as 0/1); anything not a finite number is NaN."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        out = values[rows].astype(np.float64)
        out[~np.isfinite(out)] = np.nan
        return out
    picked = [values[i] for i in rows.tolist()]
    out = np.fromiter((_number(v) for v in picked), np.float64, len(picked))
    out[~np.isfinite(out)] = np.nan
    return out


def _number(value: Any) -> float:
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    return float("nan")


def _epochs(values: list[Any] | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Seconds since the epoch of ISO 8601 strings, datetimes or numbers (NaN if unreadable;
    a time without a zone is taken as UTC)."""
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
    return np.fromiter((_epoch(v) for v in values), np.float64, len(values))


def _epoch(value: Any) -> float:
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
