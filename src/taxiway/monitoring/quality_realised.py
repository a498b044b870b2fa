"""Realised quality: the metrics of outcomes joined to predictions
(:mod:`~taxiway.monitoring.quality_join`), over a period or per window.

Classifiers (scores are probabilities of the positive class; an outcome's value is
``True``/``False`` or 1/0): ROC AUC, log loss, ECE (15 equal-mass bins), accuracy at 0.5 (score
> 0.5 is positive) and the positive rate. Regressors: MAE and RMSE. A pair that cannot be
scored is dropped and counted in ``problems`` under its reason (``non_binary_value``,
``not_a_number``, ``no_score``, ``score_out_of_range``, ``bad_timestamp``), never a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from taxiway.errors import MonitoringError
from taxiway.monitoring.quality_join import Joined, Records, column, epoch, epochs, join_outcomes
from taxiway.monitoring.quality_metrics import (
    auc_standard_error,
    calibration_error,
    log_loss,
    roc_auc,
)
from taxiway.monitoring.quality_reference import Task

__all__ = ["RealisedQuality", "realised", "realised_by_window"]

Ints = npt.NDArray[np.int64]


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
    scores, values = _pairs(predictions, outcomes, joined)
    return _measure(task, joined, scores, values, np.ones(len(scores), dtype=bool))


def realised_by_window(
    predictions: Records,
    outcomes: Records,
    task: Task,
    windows: Sequence[tuple[datetime, datetime]],
) -> list[RealisedQuality]:
    """Realised quality of the predictions made in each window ``[start, end)`` (their
    ``ts``), from ONE join over all ``predictions``: an outcome joined by unit goes to its
    unit's latest prediction overall, never to an older one because the newer sits in
    another window. Per window, ``unjoined`` and ``duplicates`` are 0 (an outcome that
    judges nothing belongs to no window; see :func:`realised` for the period's).

    >>> from datetime import UTC, timedelta
    >>> t0 = datetime(2026, 12, 6, 5, tzinfo=UTC)
    >>> preds = {"unit": ["u", "u"], "ts": [t0, t0 + timedelta(hours=1)], "prediction": [0.2, 0.9]}
    >>> outs = {"unit": ["u"], "timestamp": [t0 + timedelta(hours=2)], "value": [1]}
    >>> hours = [(t0, t0 + timedelta(hours=1)), (t0 + timedelta(hours=1), t0 + timedelta(hours=2))]
    >>> [q.rows for q in realised_by_window(preds, outs, "classification", hours)]
    [0, 1]
    """
    joined = join_outcomes(predictions, outcomes)
    scores, values = _pairs(predictions, outcomes, joined)
    times = epochs(column(predictions, "ts"))[joined.prediction]
    found = []
    for start, end in windows:
        inside = (times >= epoch(start)) & (times < epoch(end))
        found.append(_measure(task, joined, scores, values, inside, whole=False))
    return found


def _pairs(
    predictions: Records, outcomes: Records, joined: Joined
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The score and the outcome value of each joined pair."""
    scores = _numbers(column(predictions, "prediction"), joined.prediction)
    return scores, _numbers(column(outcomes, "value"), joined.outcome)


def _measure(
    task: Task,
    joined: Joined,
    scores: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    among: npt.NDArray[np.bool_],
    *,
    whole: bool = True,
) -> RealisedQuality:
    """The quality of the pairs ``among`` selects (every problem counted, none raised)."""
    problems: dict[str, int] = {}
    if whole:
        _count(problems, "bad_timestamp", joined.bad_timestamps)
    _count(problems, "no_score", np.count_nonzero(among & np.isnan(scores)))
    _count(problems, "not_a_number", np.count_nonzero(among & np.isnan(values)))
    keep = among & ~np.isnan(scores) & ~np.isnan(values)
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
        joined=int(among.sum()),
        unjoined=joined.unjoined if whole else 0,
        by_request_id=int(np.count_nonzero(among & ~joined.via_unit)),
        by_unit=int(np.count_nonzero(among & joined.via_unit)),
        duplicates=joined.duplicates if whole else 0,
        metrics=metrics,
        problems=problems,
    )


def _classification(
    s: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> dict[str, float | None]:
    auc = roc_auc(s, y)
    positives = float(y.sum())
    return {
        "roc_auc": auc,
        "roc_auc_se": auc_standard_error(auc, positives, len(y) - positives),
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
    if isinstance(value, bool | int | float | np.number | np.bool_):
        return float(value)
    return float("nan")
