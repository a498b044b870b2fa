"""One model of the monitor's findings, and its JSON.

:class:`MonitorReport` holds what one run observed: per feature and for the output, the drift
statistic against its threshold in every window and the status hysteresis gives it; latency
per window against the budget; the error, fallback and degraded rates; each SLO's burn rates;
estimated and realised quality; the alerts firing. :meth:`MonitorReport.to_json` is the
machine-readable form; every other view (the terminal summary, Markdown, HTML) is laid out
from the rows and lines :mod:`~taxiway.monitoring.report.rows` builds from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from taxiway.monitoring.alerts import Alert

__all__ = [
    "FIRING",
    "Bins",
    "DriftFinding",
    "LatencyFinding",
    "LatencyWindow",
    "MonitorReport",
    "Period",
    "QualityFinding",
    "QualityPoint",
    "Rates",
    "SloFinding",
    "Status",
    "WindowJudgement",
    "firing",
]

Status = Literal["ok", "warn", "drift"]
FIRING = ("page", "ticket")
"""The severities that make a run unhealthy (exit 1); ``info`` is shown, not firing."""


@dataclass(frozen=True)
class WindowJudgement:
    """One window's verdict on one feature: its rows (missing ones included), the statistic
    and its threshold for the window's size (None: too few known values for a statistic), over
    or not (the statistic, or a jump of the missing share), and the status hysteresis gave
    after it. ``judged`` False: too few rows to judge at all (the status carries over)."""

    start: datetime
    rows: int
    value: float | None
    threshold: float | None
    over: bool
    status: Status
    judged: bool = True

    def to_json(self) -> dict[str, Any]:
        """``start``, ``rows``, ``value``, ``threshold``, ``over``, ``status``."""
        return {
            "start": self.start.isoformat(),
            "rows": self.rows,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
            "over": self.over,
            "status": self.status,
            "judged": self.judged,
        }


@dataclass(frozen=True)
class Bins:
    """A distribution as a chart draws it: a label and a share per bin (deciles of the
    reference for numbers, the most common categories for labels)."""

    labels: list[str]
    shares: list[float]

    def to_json(self) -> dict[str, Any]:
        """``labels`` and ``shares``."""
        return {"labels": list(self.labels), "shares": [round(s, 6) for s in self.shares]}


@dataclass(frozen=True)
class DriftFinding:
    """One input feature (or the output) over the period: its status and why."""

    name: str
    kind: str
    statistic: str
    value: float | None
    threshold: float | None
    status: Status
    windows: int
    rows: int
    missing_share: float | None
    reference_missing_share: float | None
    out_of_range_share: float | None
    p_value: float | None
    history: list[WindowJudgement]
    reference: Bins
    current: Bins
    source: str | None = None
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        """The issue's ``features[]`` entry (``name``, ``statistic``, ``value``,
        ``threshold``, ``status``...) with its window history and chart bins."""
        return {
            "name": self.name,
            "kind": self.kind,
            "statistic": self.statistic,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
            "status": self.status,
            "windows": self.windows,
            "rows": self.rows,
            "missing_share": _finite(self.missing_share),
            "reference_missing_share": _finite(self.reference_missing_share),
            "out_of_range_share": _finite(self.out_of_range_share),
            "p_value": _finite(self.p_value),
            "why": self.why,
            "source": self.source,
            "history": [h.to_json() for h in self.history],
            "reference": self.reference.to_json(),
            "current": self.current.to_json(),
        }


@dataclass(frozen=True)
class LatencyWindow:
    """Latency in one window: requests, p50 and p99 (ms), and how many were over budget."""

    start: datetime
    requests: int
    p50: float | None
    p99: float | None
    slow: int

    def to_json(self) -> dict[str, Any]:
        """``start``, ``requests``, ``p50``, ``p99``, ``slow``."""
        return {
            "start": self.start.isoformat(),
            "requests": self.requests,
            "p50": _finite(self.p50),
            "p99": _finite(self.p99),
            "slow": self.slow,
        }


@dataclass(frozen=True)
class LatencyFinding:
    """The latest window's p50/p99 against the budget and the previous window's p99."""

    p50: float | None
    p99: float | None
    budget_ms: float | None
    previous_p99: float | None
    windows: list[LatencyWindow]

    def to_json(self) -> dict[str, Any]:
        """``p50``, ``p99``, ``budget_ms``, ``previous_p99`` and the ``windows``."""
        return {
            "p50": _finite(self.p50),
            "p99": _finite(self.p99),
            "budget_ms": _finite(self.budget_ms),
            "previous_p99": _finite(self.previous_p99),
            "windows": [w.to_json() for w in self.windows],
        }


@dataclass(frozen=True)
class Rates:
    """Shares of the period's requests answered by a fallback, degraded, or in error.
    ``shed`` (refused for load) is not in the prediction log: None."""

    requests: int
    fallback: float | None
    degraded: float | None
    error: float | None
    shed: float | None = None

    def to_json(self) -> dict[str, Any]:
        """``fallback``, ``degraded``, ``error``, ``shed`` (None: not observed)."""
        return {
            "fallback": _finite(self.fallback),
            "degraded": _finite(self.degraded),
            "error": _finite(self.error),
            "shed": _finite(self.shed),
        }


@dataclass(frozen=True)
class SloFinding:
    """One SLO's burn rates now (``5m``... ``3d``), its status, and its burn per window."""

    name: str
    objective: float
    period_days: float
    burn: dict[str, float]
    status: Literal["ok", "ticket", "page"]
    history: list[tuple[datetime, float | None]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``name``, ``objective``, ``burn`` (by window), ``status`` and ``history``."""
        return {
            "name": self.name,
            "objective": self.objective,
            "period_days": self.period_days,
            "burn": {k: _finite(v) for k, v in self.burn.items()},
            "status": self.status,
            "history": [{"start": t.isoformat(), "burn": _finite(b)} for t, b in self.history],
        }


@dataclass(frozen=True)
class QualityPoint:
    """Estimated and realised quality in one window (None: not available there)."""

    start: datetime
    estimated: float | None
    realised: float | None
    joined: int = 0


@dataclass(frozen=True)
class QualityFinding:
    """Quality over the period: the estimate without labels, the realised figure from the
    joined outcomes, the floor paged on, and the features whose drift tracks the change."""

    metric: str | None
    estimated: dict[str, Any] | None
    realised: dict[str, Any] | None
    minimum: float | None
    reference: float | None
    drivers: list[tuple[str, float]]
    history: list[QualityPoint]
    estimated_why: str | None = None
    estimated_from: str = "the output's KLL sketch (1,000 equal-mass quantiles)"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``estimated``, ``realised`` (None when there is none), ``drivers``..."""
        return {
            "metric": self.metric,
            "estimated": self.estimated,
            "estimated_why": self.estimated_why,
            "realised": self.realised,
            "minimum": _finite(self.minimum),
            "reference": _finite(self.reference),
            "estimated_from": self.estimated_from,
            "drivers": [{"feature": n, "correlation": _finite(c)} for n, c in self.drivers],
            "history": [
                {
                    "start": p.start.isoformat(),
                    "estimated": _finite(p.estimated),
                    "realised": _finite(p.realised),
                    "joined": p.joined,
                }
                for p in self.history
            ],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Period:
    """The stretch of the log the report covers."""

    start: datetime
    end: datetime
    windows: int
    requests: int

    def to_json(self) -> dict[str, Any]:
        """``start``, ``end``, ``windows``, ``requests``."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "windows": self.windows,
            "requests": self.requests,
        }


@dataclass(frozen=True)
class MonitorReport:
    """What one monitor run observed; ``healthy`` when no page or ticket alert fires."""

    model: str
    version: int
    generated_at: datetime
    period: Period
    features: list[DriftFinding]
    output: DriftFinding | None
    latency: LatencyFinding
    rates: Rates
    slo: list[SloFinding]
    quality: QualityFinding
    alerts: list[Alert]
    window_s: float
    hysteresis: tuple[int, int]
    threshold_mode: str
    versions: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No alert of severity page or ticket is firing."""
        return not firing(self.alerts)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able data, in the issue's shape.

        Keys: ``model``, ``version``, ``period``, ``features`` (each ``name``,
        ``statistic``, ``value``, ``threshold``, ``status``...), ``output``, ``latency``,
        ``rates``, ``slo``, ``quality`` (``estimated``, ``realised``, ``drivers``),
        ``alerts``, ``healthy``.
        """
        return {
            "model": self.model,
            "version": self.version,
            "generated_at": self.generated_at.isoformat(),
            "period": self.period.to_json(),
            "window_s": self.window_s,
            "hysteresis": {"k": self.hysteresis[0], "m": self.hysteresis[1]},
            "threshold": self.threshold_mode,
            "features": [f.to_json() for f in self.features],
            "output": None if self.output is None else self.output.to_json(),
            "latency": self.latency.to_json(),
            "rates": self.rates.to_json(),
            "slo": [s.to_json() for s in self.slo],
            "quality": self.quality.to_json(),
            "alerts": [a.to_dict() for a in self.alerts],
            "versions": dict(self.versions),
            "notes": list(self.notes),
            "healthy": self.healthy,
        }


def firing(alerts: Sequence[Alert]) -> list[Alert]:
    """The alerts that make a run unhealthy: severity page or ticket."""
    return [a for a in alerts if a.severity in FIRING]


def _finite(value: Any) -> float | None:
    """A JSON number: None for None, NaN or infinity."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _example() -> MonitorReport:
    """A small healthy report, for the doctests."""
    from datetime import UTC

    start = datetime(2026, 12, 6, 5, tzinfo=UTC)
    end = datetime(2026, 12, 6, 7, tzinfo=UTC)
    return MonitorReport(
        model="retail",
        version=3,
        generated_at=end,
        period=Period(start, end, 2, 1200),
        features=[],
        output=None,
        latency=LatencyFinding(4.0, 9.0, 50.0, 8.0, []),
        rates=Rates(1200, 0.0, 0.0, 0.0),
        slo=[],
        quality=QualityFinding(None, None, None, None, None, [], []),
        alerts=[],
        window_s=3600.0,
        hysteresis=(2, 3),
        threshold_mode="calibrated",
    )
