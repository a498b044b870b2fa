"""The alerts of one run: quality, SLO burn and contract breaches page; drift and latency make
tickets that say where to look."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from taxiway.monitoring.alerts import Alert
from taxiway.monitoring.monitor.inputs import MonitorInputs
from taxiway.monitoring.monitor.quality_watch import LOWER_IS_BETTER, MIN_QUALITY_ROWS
from taxiway.monitoring.monitor.times import parse_time
from taxiway.monitoring.reference import OUTPUT
from taxiway.monitoring.report.model import (
    DriftFinding,
    LatencyFinding,
    QualityFinding,
    SloFinding,
)

__all__ = ["alerts_of"]


def alerts_of(
    inputs: MonitorInputs,
    features: Sequence[DriftFinding],
    output: DriftFinding | None,
    latency: LatencyFinding,
    slos: Sequence[tuple[SloFinding, list[Alert]]],
    quality: QualityFinding,
    now: datetime,
) -> list[Alert]:
    """Every alert firing after this run: quality, SLO burn and contract breaches (page),
    drifted features and output, p99 over budget (ticket)."""
    model = inputs.model
    alerts: list[Alert] = []
    alerts += _quality_alerts(model, quality, features, now)
    for _, fired in slos:
        alerts += fired
    alerts += _contract_alerts(inputs.contracts or {}, now)
    for f in [*features, *([output] if output is not None else [])]:
        if f.status != "drift":
            continue
        what = "the output" if f is output else f"feature {f.name}"
        since = _since(f)
        alerts.append(
            Alert(
                key=f"drift:{model}:{OUTPUT if f is output else f.name}",
                kind="drift",
                severity="ticket",
                title=f"{what} drifted",
                detail=(
                    f.why
                    + (
                        ""
                        if "missing" in f.why
                        else f"; missing {_pct(f.missing_share)} (reference "
                        f"{_pct(f.reference_missing_share)})"
                    )
                    + f"; out of range {_pct(f.out_of_range_share)}"
                    + (
                        f"; KS p-value {f.p_value:.2g} (diagnosis only)"
                        if f.p_value is not None
                        else ""
                    )
                ),
                value=f.value,
                threshold=f.threshold,
                since=since,
                where=f.source,
            )
        )
    if (
        latency.budget_ms is not None
        and latency.p99 is not None
        and latency.p99 > latency.budget_ms
    ):
        alerts.append(
            Alert(
                key=f"latency:{model}:p99",
                kind="latency",
                severity="ticket",
                title=f"p99 latency {latency.p99:.4g} ms over the {latency.budget_ms:g} ms budget",
                detail=(
                    "in the latest window"
                    + (
                        f" (the window before: {latency.previous_p99:.4g} ms)"
                        if latency.previous_p99 is not None
                        else ""
                    )
                ),
                value=latency.p99,
                threshold=latency.budget_ms,
                since=latency.windows[-1].start,
                where="latency by answer path and arm (online-store lookups, the model, fallbacks)",
            )
        )
    return alerts


def _quality_alerts(
    model: str, q: QualityFinding, features: Sequence[DriftFinding], now: datetime
) -> list[Alert]:
    if q.minimum is None or q.metric is None:
        return []
    lower = q.metric in LOWER_IS_BETTER
    # only a feature that moved can explain a quality change: drivers rank those first
    drifted = {f.name for f in features if f.status != "ok"}
    ranked = [n for n, _ in q.drivers if n in drifted]
    ranked += sorted(drifted - set(ranked))
    by_name = {f.name: f for f in features}
    look = ", ".join(
        f"{n}" + (f" ({by_name[n].source})" if n in by_name and by_name[n].source else "")
        for n in ranked[:3]
    )
    alerts = []
    latest = _get(q.estimated, "window")
    for kind, found, value, rows in (
        ("realised", q.realised, _get(q.realised, q.metric), _get(q.realised, "rows")),
        ("estimated", q.estimated, _get(latest, q.metric), _get(latest, "rows")),
    ):
        if found is None or value is None or (rows or 0) < MIN_QUALITY_ROWS:
            continue
        if kind == "estimated" and not found.get("trusted"):
            continue
        # a small window's figure is noisy: page only beyond two standard errors of the floor
        se = _get(latest if kind == "estimated" else found, f"{q.metric}_se") or 0.0
        margin = 2 * float(se)
        bad = value > q.minimum + margin if lower else value < q.minimum - margin
        if not bad:
            continue
        word = "above" if lower else "below"
        alerts.append(
            Alert(
                key=f"quality:{model}:{kind}",
                kind="quality",
                severity="page",
                title=f"{kind} {q.metric} {value:.4g} {word} {q.minimum:.4g}",
                detail=(
                    f"{kind} over {int(rows or 0):,} "
                    + (
                        "joined outcomes"
                        if kind == "realised"
                        else "scores of the latest window (CBPE)"
                    )
                    + (
                        f"; training-time value {q.reference:.4g}"
                        if q.reference is not None
                        else ""
                    )
                    + (
                        f"; look first at: {look}"
                        if look
                        else "; no input drifted: a concept change?"
                    )
                ),
                value=value,
                threshold=q.minimum,
                since=now,
                where=look or None,
            )
        )
    return alerts


def _contract_alerts(contracts: Mapping[str, Any], now: datetime) -> list[Alert]:
    alerts = []
    for source, result in sorted(contracts.items()):
        if not isinstance(result, Mapping) or result.get("status") not in ("fail", "block"):
            continue
        at = result.get("at")
        alerts.append(
            Alert(
                key=f"contract:{source}",
                kind="contract",
                severity="page",
                title=f"source {source} breaks its data contract",
                detail=str(result.get("detail") or "its latest contract check failed"),
                value=None,
                threshold=None,
                since=parse_time(at) if isinstance(at, str) else now,
                where=f"source {source}",
            )
        )
    return alerts


def _since(f: DriftFinding) -> datetime:
    """The start of the first window of the streak the status stands on."""
    judged = [h for h in f.history if h.judged]
    since = judged[-1].start if judged else f.history[-1].start
    for h in reversed(judged):
        if not h.over and h.status == "ok":
            break
        if h.over:
            since = h.start
    return since


def _get(d: Mapping[str, Any] | None, key: str) -> Any:
    return None if d is None else d.get(key)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
