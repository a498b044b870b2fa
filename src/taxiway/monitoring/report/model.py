"""One model of the monitor's findings, its JSON, and the words every view shares.

:class:`MonitorReport` holds what one run observed: per feature and for the output, the drift
statistic against its threshold in every window and the status hysteresis gives it; latency
per window against the budget; the error, fallback and degraded rates; each SLO's burn rates;
estimated and realised quality; the alerts firing. :meth:`MonitorReport.to_json` is the
machine-readable form; the terminal summary (:func:`summary_lines`), Markdown and HTML are
laid out from the rows and lines built here, so every view says the same statuses with the
same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from taxiway.monitoring.alerts import Alert

__all__ = [
    "ALERT_HEADERS",
    "DRIFT_HEADERS",
    "LATENCY_HEADERS",
    "SLO_HEADERS",
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
    "alert_rows",
    "drift_row",
    "drift_rows",
    "firing",
    "headline",
    "latency_line",
    "number_text",
    "quality_lines",
    "rates_line",
    "slo_rows",
    "summary_lines",
    "window_label",
]

Status = Literal["ok", "warn", "drift"]
FIRING = ("page", "ticket")
"""The severities that make a run unhealthy (exit 1); ``info`` is shown, not firing."""

DRIFT_HEADERS = ["feature", "statistic", "value", "threshold", "status", "missing", "why"]
SLO_HEADERS = ["SLO", "objective", "5m", "30m", "1h", "6h", "3d", "status"]
ALERT_HEADERS = ["severity", "alert", "detail", "where", "since"]
LATENCY_HEADERS = ["window", "requests", "p50 ms", "p99 ms", "over budget"]
BURN_WINDOWS = ("5m", "30m", "1h", "6h", "3d")


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


# --- the words every view shares ---------------------------------------------------------


def firing(alerts: Sequence[Alert]) -> list[Alert]:
    """The alerts that make a run unhealthy: severity page or ticket."""
    return [a for a in alerts if a.severity in FIRING]


def headline(report: MonitorReport) -> str:
    """One sentence: healthy, or how many alerts fire and of which severity.

    >>> from datetime import UTC
    >>> headline(_example())
    'retail v3: healthy over 2 window(s), 1,200 requests (2026-12-06 05:00 to 07:00 UTC)'
    """
    r = report
    span = (
        f"{r.period.windows} window(s), {number_text(r.period.requests)} requests "
        f"({r.period.start:%Y-%m-%d %H:%M} to {r.period.end:%H:%M} UTC)"
    )
    fire = firing(r.alerts)
    if not fire:
        return f"{r.model} v{r.version}: healthy over {span}"
    pages = sum(a.severity == "page" for a in fire)
    tickets = len(fire) - pages
    counts = ", ".join(
        part for part in (f"{pages} page" if pages else "", f"{tickets} ticket" if tickets else "")
        if part
    )  # fmt: skip
    return f"{r.model} v{r.version}: ALERT ({counts}) over {span}"


def drift_row(f: DriftFinding) -> list[str]:
    """A feature's row: name, statistic, value, threshold, status, missing share, why."""
    missing = "—" if f.missing_share is None else f"{f.missing_share:.1%}"
    return [
        f.name,
        f.statistic,
        number_text(f.value),
        number_text(f.threshold),
        f.status,
        missing,
        f.why,
    ]


def drift_rows(report: MonitorReport) -> list[list[str]]:
    """Every feature's row, drifted first, then the output's (named ``(output)``)."""
    order = {"drift": 0, "warn": 1, "ok": 2}
    rows = [drift_row(f) for f in sorted(report.features, key=lambda f: order[f.status])]
    if report.output is not None:
        rows.append(drift_row(report.output))
    return rows


def latency_line(latency: LatencyFinding) -> str:
    """The latest window's p50 and p99 against the budget and the previous window."""
    budget = (
        "no budget"
        if latency.budget_ms is None
        else f"budget {number_text(latency.budget_ms)} ms"
        + (
            ": over budget"
            if latency.p99 is not None and latency.p99 > latency.budget_ms
            else ": within budget"
        )
    )
    previous = (
        ""
        if latency.previous_p99 is None
        else f"; the window before: p99 {number_text(latency.previous_p99)} ms"
    )
    return (
        f"latency (latest window): p50 {number_text(latency.p50)} ms, p99 "
        f"{number_text(latency.p99)} ms, {budget}{previous}"
    )


def latency_rows(latency: LatencyFinding) -> list[list[str]]:
    """A row per window: start, requests, p50, p99, requests over budget."""
    return [
        [
            window_label(w.start),
            number_text(w.requests),
            number_text(w.p50),
            number_text(w.p99),
            number_text(w.slow),
        ]
        for w in latency.windows
    ]


def rates_line(rates: Rates) -> str:
    """The period's fallback, degraded and error rates (shed: not in the log)."""
    return (
        f"rates over {number_text(rates.requests)} requests: fallback {_share(rates.fallback)}, "
        f"degraded {_share(rates.degraded)}, error {_share(rates.error)}, shed "
        f"{_share(rates.shed) if rates.shed is not None else 'not observed (not in the log)'}"
    )


def slo_rows(report: MonitorReport) -> list[list[str]]:
    """A row per SLO: name, objective, burn over each window, status."""
    return [
        [
            s.name,
            f"{s.objective * 100:.6g}% over {s.period_days:g}d",
            *(number_text(s.burn.get(w)) for w in BURN_WINDOWS),
            s.status,
        ]
        for s in report.slo
    ]


def quality_lines(q: QualityFinding) -> list[str]:
    """Estimated and realised quality, the floor, and the drivers, one line each."""
    metric = q.metric or "quality"
    lines = []
    if q.estimated is not None:
        est = q.estimated
        line = (
            f"estimated {metric} (CBPE, no labels) over {number_text(est.get('rows'))} "
            f"answers: {number_text(est.get(metric))}"
        )
        window = est.get("window")
        if isinstance(window, dict):
            line += f"; latest window: {number_text(window.get(metric))}"
        lines.append(line)
    else:
        lines.append(f"estimated {metric}: none ({q.estimated_why or 'no estimate'})")
    if q.realised is not None:
        real = q.realised
        lines.append(
            f"realised {metric} over {number_text(real.get('rows'))} joined outcomes: "
            f"{number_text(real.get(metric))}"
        )
    else:
        lines.append(f"realised {metric}: none (no outcomes joined to the predictions yet)")
    if q.minimum is not None:
        reference = "" if q.reference is None else f" (training: {number_text(q.reference)})"
        lines.append(f"pages below {metric} {number_text(q.minimum)}{reference}")
    if q.drivers:
        drivers = ", ".join(f"{n} ({number_text(c)})" for n, c in q.drivers[:5])
        lines.append(f"drift that tracks the quality change: {drivers}")
    lines.extend(q.notes)
    return lines


def alert_rows(report: MonitorReport) -> list[list[str]]:
    """A row per alert, pages first."""
    rank = {"page": 0, "ticket": 1, "info": 2}
    return [
        [a.severity, a.title, a.detail, a.where or "—", window_label(a.since)]
        for a in sorted(report.alerts, key=lambda a: (rank.get(a.severity, 3), a.key))
    ]


def summary_lines(report: MonitorReport) -> list[str]:
    """The terminal summary: the headline, the alerts, each feature that is not ok (all of
    them with ``verbose``), latency, rates, SLOs and quality."""
    lines = [headline(report), ""]
    for row in alert_rows(report):
        lines.append(
            f"[{row[0]}] {row[1]}: {row[2]}" + (f" (look at {row[3]})" if row[3] != "—" else "")
        )
    if report.alerts:
        lines.append("")
    lines.append("drift:")
    for row in drift_rows(report):
        lines.append(f"  {row[4]:<5} {row[0]}: {row[1]} {row[2]} (threshold {row[3]})")
    lines += ["", latency_line(report.latency), rates_line(report.rates)]
    for row in slo_rows(report):
        burns = ", ".join(f"{w} {b}" for w, b in zip(BURN_WINDOWS, row[2:7], strict=True))
        lines.append(f"SLO {row[0]} ({row[1]}): {row[7]}; burn {burns}")
    lines += quality_lines(report.quality)
    lines += report.notes
    return lines


def window_label(start: datetime) -> str:
    """``2026-12-06 05:00`` (UTC)."""
    return f"{start:%Y-%m-%d %H:%M}"


def number_text(value: Any) -> str:
    """``1234.5`` → ``1,234``; ``0.012345`` → ``0.01235``; None/NaN → ``—``.

    >>> number_text(1234.5), number_text(0.012345), number_text(None), number_text(3)
    ('1,234', '0.01235', '—', '3')
    """
    if value is None or isinstance(value, bool):
        return "—"
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


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
