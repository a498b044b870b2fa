"""Quality over the period and per window: estimated (CBPE from the output's sketch), realised
(outcomes joined to the kept predictions), the floor it pages at, and the drivers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from taxiway.monitoring.monitor.inputs import MonitorInputs
from taxiway.monitoring.monitor.kept_predictions import LOG_PATTERN, load_predictions
from taxiway.monitoring.profiles import NumericProfile, Profile
from taxiway.monitoring.quality import (
    estimated,
    rank_drivers,
    read_outcomes,
    realised,
    realised_by_window,
)
from taxiway.monitoring.quality_join import epochs
from taxiway.monitoring.report.model import (
    DriftFinding,
    QualityFinding,
    QualityPoint,
)
from taxiway.monitoring.windows import Window
from taxiway.spec.models import Monitoring

__all__ = [
    "LOWER_IS_BETTER",
    "MIN_QUALITY_ROWS",
    "QUALITY_MARGIN",
    "SCORE_POINTS",
    "quality_finding",
]

SCORE_POINTS = 1_000
"""Equal-mass quantiles of the output's sketch that stand for a window's scores in CBPE."""
MIN_QUALITY_ROWS = 100
"""Scores (estimated) or joined outcomes (realised) a quality figure needs to page."""
QUALITY_MARGIN = 0.05
"""Without ``monitoring.quality.min``, page this far below the training-time value (for
metrics in [0, 1])."""
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss", "calibration_error"})
"""Metrics where lower is better: their floor is a ceiling."""


def quality_finding(
    inputs: MonitorInputs,
    spec: Monitoring,
    windows: Sequence[Window],
    features: Sequence[DriftFinding],
) -> QualityFinding:
    """Estimated and realised quality over the period and per window, the floor to page at
    (the spec's, else the training-time value minus :data:`QUALITY_MARGIN`), and the drivers
    among the drifting ``features``."""
    ref = inputs.reference.get("quality")
    task = inputs.task
    metric = spec.quality.metric or ("roc_auc" if task == "classification" else "mae")
    reference_value = _reference_metric(ref, metric)
    minimum = spec.quality.min
    in_unit = reference_value is not None and 0.0 <= reference_value <= 1.0
    if minimum is None and in_unit and metric not in LOWER_IS_BETTER:
        assert reference_value is not None  # nosec B101
        minimum = reference_value - QUALITY_MARGIN
    estimate, why, estimates = _estimated(ref, windows, metric)
    found, realised_series = _realised(inputs, windows, metric)
    # one kind of quality per series: realised where 3 windows have it, else the estimate
    known = sum(r is not None for r in realised_series)
    series = realised_series if known >= 3 else estimates
    # drivers: the drifting features (warn or drift) whose drift moves with the quality
    drift = {f.name: [h.value for h in f.history] for f in features if f.status != "ok"}
    drivers = rank_drivers(drift, series)
    history = [
        QualityPoint(w.start, e, r)
        for w, e, r in zip(windows, estimates, realised_series, strict=True)
    ]
    return QualityFinding(
        metric=metric,
        estimated=estimate,
        realised=found,
        minimum=minimum,
        reference=reference_value,
        drivers=drivers,
        history=history,
        estimated_why=why,
    )


def _estimated(
    ref: Any, windows: Sequence[Window], metric: str
) -> tuple[dict[str, Any] | None, str | None, list[float | None]]:
    """The CBPE estimate over the period (with the latest window's under ``window``), why
    there is none, and the estimate per window."""
    none: list[float | None] = [None] * len(windows)
    if not isinstance(ref, dict):
        return None, "no quality reference is stored with this version: retrain to add one", none
    period = _merge([w.output for w in windows])
    whole = estimated(_scores(period), ref, rows=period.known)
    if whole.method is None:
        return None, whole.reason, none
    per_window = [
        _estimate(w.output, ref) if w.output.known >= MIN_QUALITY_ROWS else None for w in windows
    ]
    series = [None if e is None else _metric_of(e, metric) for e in per_window]
    found: dict[str, Any] = {**whole.to_dict(), "rows": period.known}
    found["trusted"] = bool(ref.get("trusted"))
    found["why"] = ref.get("why")
    latest = next(
        ((w, e) for w, e in zip(reversed(windows), reversed(per_window), strict=True) if e),
        None,
    )
    found["window"] = (
        None if latest is None else {"start": latest[0].start.isoformat(), **latest[1]}
    )
    return found, None, series


def _estimate(output: Profile, ref: dict[str, Any]) -> dict[str, Any]:
    """The CBPE estimate of one window, ``rows`` its real answers (not the quantiles')."""
    return {**estimated(_scores(output), ref, rows=output.known).to_dict(), "rows": output.known}


def _reference_metric(ref: Any, metric: str) -> float | None:
    if not isinstance(ref, dict):
        return None
    metrics = ref.get("metrics")
    value = metrics.get(metric) if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _metric_of(d: Mapping[str, Any], metric: str) -> float | None:
    value = d.get(metric)
    if value is None and isinstance(d.get("metrics"), Mapping):
        value = d["metrics"].get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _scores(profile: Profile) -> np.ndarray:
    """:data:`SCORE_POINTS` equal-mass quantiles of a numeric output: a stand-in sample."""
    if not isinstance(profile, NumericProfile) or not profile.known:
        return np.zeros(0)
    qs = (np.arange(SCORE_POINTS) + 0.5) / SCORE_POINTS
    return np.asarray(profile.quantiles(qs.tolist()), dtype=np.float64)


def _merge(profiles: Sequence[Profile]) -> Profile:
    merged = profiles[0]
    for p in profiles[1:]:
        merged = merged.merge(p)
    return merged


def _realised(
    inputs: MonitorInputs, windows: Sequence[Window], metric: str
) -> tuple[dict[str, Any] | None, list[float | None]]:
    """Realised quality over the period and per window, from the joined outcomes."""
    nothing: list[float | None] = [None] * len(windows)
    folder = inputs.outcomes_folder
    if folder is None or not folder.is_dir() or not any(folder.glob(LOG_PATTERN)):
        return None, nothing
    outcomes = read_outcomes(folder, inputs.outcome_name)
    if not outcomes:
        return None, nothing
    kept = load_predictions(inputs.state_folder)
    times = epochs(kept["ts"])
    inside = (times >= windows[0].start.timestamp()) & (times < windows[-1].end.timestamp())
    if not inside.any():
        return None, nothing
    predictions = {key: values[inside] for key, values in kept.items()}
    task: Literal["classification", "regression"] = (
        "classification" if inputs.task == "classification" else "regression"
    )
    whole = realised(predictions, outcomes, task)
    spans = [(w.start, w.end) for w in windows]
    per_window = [
        _metric_of(q.metrics, metric) if q.rows >= MIN_QUALITY_ROWS else None
        for q in realised_by_window(predictions, outcomes, task, spans)
    ]
    join = whole.to_dict()
    metrics = join.pop("metrics")
    found = {"rows": whole.rows, "joined": whole.joined, **metrics, "join": join}
    return found, per_window
