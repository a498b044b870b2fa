"""Validation metrics for model and baseline: ranking, probability quality, error size.

Classification: ROC AUC, PR AUC (average precision), log loss, Brier score and the expected
calibration error (10 equal-width bins); regression: MAE and RMSE. A metric that is undefined
on the data (ROC AUC with one class) is ``None``, never a made-up number.

>>> import numpy as np
>>> m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
>>> m["roc_auc"], m["pr_auc"], round(m["brier"], 4)
(0.75, 0.8333333333333333, 0.1581)
>>> better("roc_auc", 0.8, 0.7), better("rmse", 0.8, 0.7)
(True, False)
>>> score("roc_auc", np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])), display_name("roc_auc")
(0.75, 'ROC AUC')
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "better",
    "calibration_table",
    "classification_metrics",
    "default_metric",
    "display_name",
    "regression_metrics",
    "score",
]

METRICS = {
    "classification": ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error"),
    "regression": ("mae", "rmse"),
}
HIGHER_IS_BETTER = frozenset({"roc_auc", "pr_auc"})
_EPS = 1e-15
_LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "calibration_error": "calibration error",
    "mae": "MAE",
    "rmse": "RMSE",
}


def display_name(metric: str) -> str:
    """The metric's name in reports (``roc_auc`` -> ``ROC AUC``)."""
    return _LABELS.get(metric, metric)


def default_metric(task: str) -> str:
    """``roc_auc`` for classification, ``rmse`` for regression."""
    return "roc_auc" if task == "classification" else "rmse"


def better(metric: str, a: float | None, b: float | None) -> bool:
    """Whether ``a`` is strictly better than ``b`` on ``metric`` (``None`` never is)."""
    if a is None:
        return False
    if b is None:
        return True
    return a > b if metric in HIGHER_IS_BETTER else a < b


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Metrics of probabilities ``p`` for 0/1 labels ``y``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    out: dict[str, float | None] = {m: _one(m, y, p) for m in METRICS["classification"]}
    return {**out, "positive_rate": float(y.mean()) if len(y) else None, "rows": len(y)}


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Mean absolute and root mean squared error of ``p`` against ``y``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if not len(y):
        return {"mae": None, "rmse": None, "rows": 0}
    out: dict[str, float | None] = {m: _one(m, y, p) for m in METRICS["regression"]}
    return {**out, "mean": float(y.mean()), "rows": len(y)}


def score(metric: str, y: np.ndarray, p: np.ndarray) -> float | None:
    """``metric`` alone, equal to its entry in :func:`classification_metrics` or
    :func:`regression_metrics` (the baseline's search scores many candidates on one metric)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if metric in METRICS["classification"]:
        p = np.clip(p, _EPS, 1 - _EPS)
    elif metric not in METRICS["regression"]:
        raise ValueError(f"unknown metric {metric!r}")
    return _one(metric, y, p)


def _one(metric: str, y: np.ndarray, p: np.ndarray) -> float | None:
    """One metric of (already clipped, for classification) predictions ``p``."""
    if not len(y):
        return None
    if metric in ("roc_auc", "pr_auc"):
        from sklearn.metrics import average_precision_score, roc_auc_score

        if not 0 < y.sum() < len(y):
            return None
        ranker = roc_auc_score if metric == "roc_auc" else average_precision_score
        return float(ranker(y, p))
    if metric == "log_loss":
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if metric == "brier":
        return float(np.mean((p - y) ** 2))
    if metric == "calibration_error":
        return _ece(y, p)
    if metric == "mae":
        return float(np.mean(np.abs(p - y)))
    if metric == "rmse":
        return float(np.sqrt(np.mean((p - y) ** 2)))
    raise ValueError(f"unknown metric {metric!r}")


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per probability bin: rows, mean predicted and observed rate (a reliability diagram)."""
    index = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append(
                {
                    "bin": [b / bins, (b + 1) / bins],
                    "rows": int(mask.sum()),
                    "predicted": float(np.mean(p[mask])),
                    "observed": float(np.mean(y[mask])),
                }
            )
    return table


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted gap between predicted and observed."""
    table = calibration_table(y, p, bins)
    return float(sum(r["rows"] * abs(r["predicted"] - r["observed"]) for r in table) / len(y))
