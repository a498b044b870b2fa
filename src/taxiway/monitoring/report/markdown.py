"""monitor.md: the monitor's findings as Markdown, readable as plain text in a terminal."""

from __future__ import annotations

from collections.abc import Sequence

from taxiway.monitoring.report.model import MonitorReport
from taxiway.monitoring.report.rows import (
    ALERT_HEADERS,
    DRIFT_HEADERS,
    LATENCY_HEADERS,
    SLO_HEADERS,
    alert_rows,
    drift_rows,
    headline,
    latency_line,
    latency_rows,
    quality_lines,
    rates_line,
    slo_rows,
)

__all__ = ["render_markdown"]


def render_markdown(report: MonitorReport) -> str:
    """The report as Markdown: headline, alerts, drift, latency and rates, SLOs, quality.

    >>> from taxiway.monitoring.report.model import _example
    >>> render_markdown(_example()).splitlines()[0]
    '# Monitor: retail v3'
    """
    r = report
    k, m = r.hysteresis
    lines = [
        f"# Monitor: {r.model} v{r.version}",
        "",
        f"**{headline(r)}**",
        "",
        f"- windows of {_duration(r.window_s)}; a status changes when {k} of the last {m} "
        f"windows are over the threshold ({r.threshold_mode})",
        f"- generated at {r.generated_at:%Y-%m-%d %H:%M:%S} UTC",
        *(f"- {note}" for note in r.notes),
        "",
        "## Alerts",
        "",
        *_table(ALERT_HEADERS, alert_rows(r)),
        "",
        "## Drift",
        "",
        *_table(DRIFT_HEADERS, drift_rows(r)),
        "",
        "## Latency and rates",
        "",
        f"- {latency_line(r.latency)}",
        f"- {rates_line(r.rates)}",
        "",
        *_table(LATENCY_HEADERS, latency_rows(r.latency)),
        "",
        "## SLOs (burn rate: 1 spends the error budget exactly over the period)",
        "",
        *_table(SLO_HEADERS, slo_rows(r)),
        "",
        "## Quality",
        "",
        *(f"- {line}" for line in quality_lines(r.quality)),
        "",
    ]
    return "\n".join(lines)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["none"]
    head = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return [*head, *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    """``3600`` → ``1h``; ``900`` → ``15 min``; ``86400`` → ``1d``."""
    if seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
