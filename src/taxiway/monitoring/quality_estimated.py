"""Estimated quality while labels are delayed: confidence-based performance estimation (CBPE,
as NannyML named it) for classifiers.

The version's stored calibration map turns each live score into the probability ``c`` that
the row is positive. Then, with ``c`` standing in for the unknown label: the expected ROC AUC
(:func:`~taxiway.monitoring.quality_metrics.expected_roc_auc`: expected correctly ordered
pairs over expected positive-negative pairs) and the expected accuracy at 0.5
(``mean(c)`` over rows scored > 0.5 plus ``mean(1 - c)`` over the others, row-weighted).

**What it can see**: a change in the score distribution, e.g. inputs drifting to where the
model is unsure, lowers the estimate as it lowers the real quality. **What it cannot**: a
concept change, where the same inputs now mean something else (labels flip more often, scores
do not move). CBPE assumes the calibration map still holds, so its estimate stays where it was
while the real quality falls; only realised quality, from outcomes, shows that. That is why the
monitor pages on realised quality as soon as outcomes arrive, and why the estimate is only
offered when the training-time check trusts the calibration (``reference["trusted"]``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from taxiway.errors import MonitoringError
from taxiway.monitoring.quality_metrics import (
    apply_calibration,
    auc_standard_error,
    expected_roc_auc,
)

__all__ = ["EstimatedQuality", "estimated"]


@dataclass(frozen=True)
class EstimatedQuality:
    """The CBPE estimate of one period, or why there is none (``reason``)."""

    method: str | None
    rows: int
    roc_auc: float | None = None
    roc_auc_se: float | None = None
    """How far the real ROC AUC of ``rows`` answers moves by chance around the estimate."""
    accuracy: float | None = None
    positive_rate: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


def estimated(
    scores: npt.ArrayLike, reference: dict[str, Any], *, rows: int | None = None
) -> EstimatedQuality:
    """The CBPE estimate of the quality of ``scores`` (the model's probabilities of the
    positive class) by the version's stored quality ``reference``; missing scores are dropped.
    ``rows``: how many answers the scores stand for, when they are a summary (quantiles of a
    window's sketch); it sets ``rows`` and the standard error.

    >>> ref = {"task": "classification", "trusted": True, "why": "",
    ...        "calibration": {"x": [0.0, 1.0], "y": [0.0, 1.0]}}
    >>> e = estimated([0.1, 0.2, 0.8, 0.9], ref)
    >>> round(e.roc_auc, 4), e.accuracy, e.positive_rate
    (0.9286, 0.85, 0.5)
    >>> round(estimated([0.1, 0.2, 0.8, 0.9], ref, rows=10_000).roc_auc_se, 4)
    0.0027
    >>> estimated([0.5], {"task": "regression", "why": "no estimate for regressors"}).reason
    'no estimate for regressors'
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if reference.get("task") != "classification":
        return EstimatedQuality(method=None, rows=len(s), reason=str(reference.get("why")))
    if not reference.get("trusted"):
        return EstimatedQuality(
            method=None,
            rows=len(s),
            reason=f"CBPE is not trusted for this version: {reference.get('why')}",
        )
    try:
        points = reference["calibration"]
        x = np.asarray(points["x"], dtype=np.float64)
        y = np.asarray(points["y"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise MonitoringError(
            "the quality reference has no readable calibration map",
            fix="retrain the version, or rebuild its reference with quality_reference()",
        ) from None
    if not len(x) or len(x) != len(y):
        raise MonitoringError(
            "the quality reference's calibration map is empty or uneven",
            fix="retrain the version, or rebuild its reference with quality_reference()",
        )
    if not len(s):
        return EstimatedQuality(method="cbpe", rows=0, reason="no scores in this period")
    c = apply_calibration(x, y, s)
    n = len(s) if rows is None else rows
    auc = expected_roc_auc(s, c)
    rate = float(np.mean(c))
    return EstimatedQuality(
        method="cbpe",
        rows=n,
        roc_auc=auc,
        roc_auc_se=auc_standard_error(auc, n * rate, n * (1 - rate)),
        accuracy=float(np.mean(np.where(s > 0.5, c, 1.0 - c))),
        positive_rate=rate,
    )
