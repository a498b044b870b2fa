"""The model against its baseline within each group of validation rows: per declared segment
(``governance.segments``) and per time slice, with a paired bootstrap interval.

A group's *lift* is how much better the model scores than the baseline on the version's
metric (model minus baseline for ROC AUC and PR AUC, baseline minus model for the losses), so
a positive lift is always good. Its interval is the 2.5th and 97.5th percentiles of the lift
over :data:`RESAMPLES` paired bootstrap resamples of the group's rows (the same rows for
both, so what they share cancels out). The verdict is ``worse`` when the whole interval is
below zero, ``better`` when it is above, ``no clear difference`` otherwise; a group too small
to judge (under :data:`MIN_ROWS` rows, or under :data:`MIN_CLASS_ROWS` of either class for a
classifier) says ``not enough rows (n=...)`` instead: observed, never declared.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 600).astype(float)
>>> model = np.where(y == 1, 0.8, 0.2)           # right everywhere
>>> base = np.full(600, 0.5)
>>> model[:300] = 1 - model[:300]                # ... except in the north
>>> region = np.array(["north"] * 300 + ["south"] * 290 + ["east"] * 10)
>>> rows = compare_groups(region, y, model, base, "roc_auc")
>>> [(r["value"], r["verdict"]) for r in rows]
[('east', 'not enough rows (n=10)'), ('north', 'worse'), ('south', 'better')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taxiway.models.metrics import HIGHER_IS_BETTER, score

__all__ = [
    "MIN_CLASS_ROWS",
    "MIN_ROWS",
    "RESAMPLES",
    "TIME_SLICES",
    "compare_groups",
    "time_slices",
    "worse_groups",
]

MIN_ROWS = 50
"""Fewer validation rows in a group, and it gets no verdict."""
MIN_CLASS_ROWS = 10
"""A classifier's group needs this many rows of each class (ROC AUC needs both)."""
RESAMPLES = 200
"""Paired bootstrap resamples per group (seeded: the same data gives the same interval)."""
TIME_SLICES = 6
"""At most this many time slices: consecutive runs of spine times, equal in count."""

_WEIGHTED = frozenset({"roc_auc", "brier", "log_loss", "mae", "rmse"})
_EPS = 1e-15


def compare_groups(
    values: Sequence[Any] | np.ndarray,
    y: np.ndarray,
    p_model: np.ndarray,
    p_base: np.ndarray,
    metric: str,
    *,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per distinct value of ``values`` (sorted; missing values as ``(missing)``):
    rows, the model's and the baseline's ``metric``, the lift, its 95% interval, the verdict."""
    labels = np.array(["(missing)" if v is None or v != v else str(v) for v in values])
    y = np.asarray(y, dtype=np.float64)
    p_model = np.asarray(p_model, dtype=np.float64)
    p_base = np.asarray(p_base, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return [
        _compare(str(value), y[mask], p_model[mask], p_base[mask], metric, rng)
        for value in sorted(set(labels.tolist()))
        for mask in [labels == value]
    ]


def time_slices(times: np.ndarray, slices: int = TIME_SLICES) -> np.ndarray:
    """Each row's time slice: up to ``slices`` consecutive runs of its distinct spine times,
    labelled ``first`` or ``first..last`` (dates).

    >>> t = np.array(["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-06"], dtype="datetime64[D]")
    >>> time_slices(t, 2).tolist()
    ['2025-01-06..2025-01-13', '2025-01-06..2025-01-13', '2025-01-20', '2025-01-06..2025-01-13']
    """
    distinct = np.unique(times)
    out = np.empty(len(times), dtype=object)
    for run in np.array_split(distinct, min(slices, len(distinct))) if len(distinct) else []:
        first, last = (str(np.datetime64(t, "D")) for t in (run[0], run[-1]))
        out[np.isin(times, run)] = first if first == last else f"{first}..{last}"
    return out


def worse_groups(groups: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Every (column, row) whose verdict is ``worse``, in order."""
    return [(column, r) for column, rows in groups.items() for r in rows if r["verdict"] == "worse"]


def _compare(
    value: str,
    y: np.ndarray,
    p_model: np.ndarray,
    p_base: np.ndarray,
    metric: str,
    rng: np.random.Generator,
) -> dict[str, Any]:
    n = len(y)
    row: dict[str, Any] = {
        "value": value,
        "rows": n,
        "model": score(metric, y, p_model) if n else None,
        "baseline": score(metric, y, p_base) if n else None,
        "lift": None,
        "interval": None,
    }
    short = _too_few(y, metric)
    if short is not None or row["model"] is None or row["baseline"] is None:
        row["verdict"] = short or f"not enough rows (n={n})"
        return row
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
    row["lift"] = sign * (row["model"] - row["baseline"])
    draws = rng.integers(0, n, size=(RESAMPLES, n), dtype=np.int32)
    lifts = sign * (_resampled(metric, y, p_model, draws) - _resampled(metric, y, p_base, draws))
    lifts = lifts[np.isfinite(lifts)]
    low, high = (float(q) for q in np.percentile(lifts, [2.5, 97.5]))
    row["interval"] = [low, high]
    row["verdict"] = "worse" if high < 0 else "better" if low > 0 else "no clear difference"
    return row


def _too_few(y: np.ndarray, metric: str) -> str | None:
    n = len(y)
    if n < MIN_ROWS:
        return f"not enough rows (n={n})"
    if metric in ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error"):
        positives = int(y.sum())
        if min(positives, n - positives) < MIN_CLASS_ROWS:
            return f"not enough rows (n={n}, {positives} positive)"
    return None


def _resampled(metric: str, y: np.ndarray, p: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``metric`` on each bootstrap resample of the rows (a row of ``draws`` holds the indices
    drawn); the losses and ROC AUC as weighted sums over the rows, each drawn row's weight
    the times it was drawn."""
    n = len(y)
    if metric not in _WEIGHTED:  # PR AUC, calibration error: scored on each resample
        return np.array([np.nan if (s := score(metric, y[d], p[d])) is None else s for d in draws])
    out = np.empty(len(draws))
    inverse = np.unique(p, return_inverse=True)[1]  # tied scores share a rank (ROC AUC)
    for i, draw in enumerate(draws):
        w = np.bincount(draw, minlength=n).astype(np.float64)
        if metric == "roc_auc":
            positive = np.bincount(inverse, w * y)
            negative = np.bincount(inverse, w * (1 - y))
            below = np.cumsum(negative) - negative
            pairs = positive.sum() * negative.sum()
            out[i] = np.sum(positive * (below + negative / 2)) / pairs if pairs else np.nan
        else:
            out[i] = _weighted_loss(metric, y, p, w)
    return out


def _weighted_loss(metric: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    if metric in ("brier", "log_loss"):
        q = np.clip(p, _EPS, 1 - _EPS)
        if metric == "brier":
            return float(np.average((q - y) ** 2, weights=w))
        return float(np.average(-(y * np.log(q) + (1 - y) * np.log(1 - q)), weights=w))
    if metric == "mae":
        return float(np.average(np.abs(p - y), weights=w))
    return float(np.sqrt(np.average((p - y) ** 2, weights=w)))
