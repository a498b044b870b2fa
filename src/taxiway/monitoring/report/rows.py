"""The words every view of the monitor's report shares: headline, table headers and rows, and
the lines of latency, rates and quality, built once from :class:`MonitorReport`.

The terminal summary (:func:`summary_lines`), monitor.md and monitor.html lay these out and
add nothing, so every view says the same statuses with the same numbers.

>>> from taxiway.monitoring.report.model import _example
>>> headline(_example())
'retail v3: healthy over 2 window(s), 1,200 requests (2026-12-06 05:00 to 07:00 UTC)'
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from taxiway.monitoring.report.model import (
    DriftFinding,
    LatencyFinding,
    MonitorReport,
    QualityFinding,
    Rates,
    firing,
)

__all__ = [
    "ALERT_HEADERS",
    "BURN_WINDOWS",
    "DRIFT_HEADERS",
    "LATENCY_HEADERS",
    "SLO_HEADERS",
    "alert_rows",
    "drift_row",
    "drift_rows",
    "headline",
    "latency_line",
    "latency_rows",
    "number_text",
    "quality_lines",
    "rates_line",
    "slo_rows",
    "summary_lines",
    "window_label",
]

DRIFT_HEADERS = ["feature", "statistic", "value", "threshold", "status", "missing", "why"]
SLO_HEADERS = ["SLO", "objective", "5m", "30m", "1h", "6h", "3d", "status"]
ALERT_HEADERS = ["severity", "alert", "detail", "where", "since"]
LATENCY_HEADERS = ["window", "requests", "p50 ms", "p99 ms", "over budget"]
BURN_WINDOWS = ("5m", "30m", "1h", "6h", "3d")


def headline(report: MonitorReport) -> str:
    """One sentence: healthy, or how many alerts fire and of which severity (the module's
    example)."""
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
