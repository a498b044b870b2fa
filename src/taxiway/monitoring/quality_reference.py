"""The quality reference a version stores at training: what its validation set says about
its quality, and whether its quality can be estimated without labels.

For a classifier (scores are the probability of the positive class, labels 0/1):

* ``calibration``: the isotonic map fitted on the whole validation set (``x``/``y`` points,
  see :mod:`~taxiway.monitoring.quality_metrics`), which CBPE applies to live scores.
* ``ece``: the calibration error (15 equal-mass bins) of the raw scores (``before``) and of the
  calibrated ones on held-out rows (``after``: the map fitted on one half of the validation
  set, stratified by label, measured on the other; in-sample it would flatter itself), and
  ``noise``, the ECE that sampling alone gives a perfectly calibrated model on that half.
* ``trusted``: CBPE can be trusted when the held-out ECE is at most ``ECE_BOUND`` (0.05) and
  the validation set has at least ``MIN_CLASS_ROWS`` (100) positives and as many negatives.
  Every estimate rests on the calibrated probability being the true rate; an error of ``e``
  in it moves the expected confusion matrix by about ``e`` per row, so 0.05 keeps the
  estimate's bias to a few points of accuracy. ``why`` says which condition decided.
* ``metrics``: ROC AUC, accuracy at 0.5 (score > 0.5 is positive), log loss, ECE, positive
  rate (the keys of realised quality's metrics, so the two compare) and ``cbpe_roc_auc``,
  the estimate on the validation set itself.

The map's own sampling noise biases the estimate upwards (its steps are steeper than the
truth): on a simulated calibrated model, +0.005 ROC AUC on average with 20k validation rows,
+0.017 where live scores crowd into a narrow band, and about 0 with 200k rows. NannyML's CBPE,
which fits the same isotonic map, gives the same numbers to 1e-4.

For a regressor: ``metrics`` (MAE, RMSE) and ``estimation: None`` with the reason.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from taxiway.errors import MonitoringError
from taxiway.monitoring.quality_metrics import (
    ECE_BINS,
    apply_calibration,
    calibration_error,
    calibration_noise,
    expected_roc_auc,
    fit_isotonic,
    log_loss,
    roc_auc,
)

__all__ = ["ECE_BOUND", "MIN_CLASS_ROWS", "Task", "quality_reference"]

Task = Literal["classification", "regression"]
ECE_BOUND: Final = 0.05
"""The largest held-out calibration error at which the CBPE estimate is trusted."""
MIN_CLASS_ROWS: Final = 100
"""Positives (and negatives) the validation set needs for the calibration check to mean
anything."""
NO_REGRESSION_ESTIMATE: Final = (
    "no label-free estimate for regressors yet (direct loss estimation is not built): "
    "quality is realised only, once outcomes arrive"
)


def quality_reference(
    scores: npt.ArrayLike, labels: npt.ArrayLike, task: Task, *, seed: int = 0
) -> dict[str, Any]:
    """The JSON-able quality reference of a version, from its validation ``scores`` (the
    model's predictions) and true ``labels``.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=4000)
    >>> y = rng.uniform(size=4000) < p          # a calibrated model
    >>> ref = quality_reference(p, y, "classification")
    >>> ref["trusted"], ref["why"][:44]
    (True, 'the calibrated scores are off by 0.032 (ECE ')
    >>> m = ref["metrics"]
    >>> round(m["roc_auc"], 3), round(m["cbpe_roc_auc"], 3), len(ref["calibration"]["x"]) < 4000
    (0.827, 0.83, True)
    >>> quality_reference([1.0, 2.0], [1.5, 2.5], "regression")["metrics"]
    {'mae': 0.5, 'rmse': 0.5, 'rows': 2}
    """
    s = _finite(scores, "scores")
    if task == "regression":
        y = _finite(labels, "labels")
        _same_length(s, y)
        return _regression_reference(s, y)
    if task != "classification":
        raise MonitoringError(
            f"unknown task {task!r}", fix="pass task='classification' or task='regression'"
        )
    y = _binary(labels)
    _same_length(s, y)
    return _classification_reference(s, y, seed)


def _regression_reference(s: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> dict[str, Any]:
    errors = s - y
    metrics = {
        "mae": float(np.mean(np.abs(errors))) if len(y) else None,
        "rmse": float(np.sqrt(np.mean(errors**2))) if len(y) else None,
        "rows": len(y),
    }
    return {
        "format": 1,
        "task": "regression",
        "metrics": metrics,
        "estimation": None,
        "trusted": False,
        "why": NO_REGRESSION_ESTIMATE,
    }


def _classification_reference(
    s: npt.NDArray[np.float64], y: npt.NDArray[np.float64], seed: int
) -> dict[str, Any]:
    positives = int(y.sum())
    negatives = len(y) - positives
    x_map, y_map = fit_isotonic(s, y)
    fit, held = _halves(y, seed)
    half_x, half_y = fit_isotonic(s[fit], y[fit])
    calibrated_held = apply_calibration(half_x, half_y, s[held])
    after = calibration_error(calibrated_held, y[held])
    noise = calibration_noise(calibrated_held)
    trusted, why = _trust(positives, negatives, after, noise)
    metrics = {
        "roc_auc": roc_auc(s, y),
        "accuracy": float(np.mean((s > 0.5) == (y == 1))) if len(y) else None,
        "log_loss": log_loss(s, y),
        "calibration_error": calibration_error(s, y),
        "positive_rate": float(y.mean()) if len(y) else None,
        "cbpe_roc_auc": expected_roc_auc(s, apply_calibration(x_map, y_map, s)) if len(y) else None,
        "rows": len(y),
    }
    return {
        "format": 1,
        "task": "classification",
        "metrics": metrics,
        "positives": positives,
        "negatives": negatives,
        "calibration": {"x": x_map.tolist(), "y": y_map.tolist()},
        "ece": {
            "bins": ECE_BINS,
            "before": calibration_error(s, y),
            "after": after,
            "noise": noise,
            "bound": ECE_BOUND,
        },
        "estimation": "cbpe",
        "trusted": trusted,
        "why": why,
    }


def _trust(
    positives: int, negatives: int, after: float | None, noise: float | None
) -> tuple[bool, str]:
    """Whether CBPE can be trusted, and the sentence that says why."""
    if min(positives, negatives) < MIN_CLASS_ROWS:
        return False, (
            f"the validation set has {positives} positives and {negatives} negatives; the "
            f"calibration check needs {MIN_CLASS_ROWS} of each"
        )
    assert after is not None  # nosec B101
    assert noise is not None  # nosec B101
    measured = f"{after:.3f} (ECE on held-out validation rows, bound {ECE_BOUND})"
    if after <= ECE_BOUND:
        return True, f"the calibrated scores are off by {measured}"
    if noise > ECE_BOUND * 0.8:
        return False, (
            f"the calibrated scores are off by {measured}, but sampling alone gives "
            f"{noise:.3f} on so few rows: a larger validation set could show calibration"
        )
    return False, f"the calibrated scores are off by {measured}: the estimate would be biased"


def _halves(
    y: npt.NDArray[np.float64], seed: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row indexes of two halves with (nearly) equal shares of positives."""
    rng = np.random.default_rng(seed)
    first: list[npt.NDArray[np.intp]] = []
    second: list[npt.NDArray[np.intp]] = []
    for value in (0.0, 1.0):
        rows = rng.permutation(np.flatnonzero(y == value))
        first.append(rows[: len(rows) // 2])
        second.append(rows[len(rows) // 2 :])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def _finite(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    try:
        out = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise MonitoringError(
            f"the validation {what} are not all numbers",
            fix=f"pass the validation {what} as numbers",
        ) from None
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise MonitoringError(
            f"{bad} validation {what} are missing or infinite",
            fix=f"drop the rows whose {what} are missing before building the reference",
        )
    return out


def _binary(labels: npt.ArrayLike) -> npt.NDArray[np.float64]:
    y = _finite(labels, "labels")
    if not np.isin(y, (0.0, 1.0)).all():
        raise MonitoringError(
            "a classifier's validation labels must be 0/1 or booleans",
            fix="encode the positive class as 1 (or True) and the other as 0",
        )
    return y


def _same_length(s: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> None:
    if len(s) != len(y):
        raise MonitoringError(
            f"{len(s)} scores but {len(y)} labels",
            fix="pass one score per validation row and its label",
        )
