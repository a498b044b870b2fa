"""Latency per window against the budget, the period's rates, and each SLO's burn."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, cast

from taxiway.monitoring.alerts import Alert
from taxiway.monitoring.report.model import (
    LatencyFinding,
    LatencyWindow,
    Rates,
    SloFinding,
)
from taxiway.monitoring.slo import SloSpec, burn_rates, slo_alerts
from taxiway.monitoring.windows import Window
from taxiway.spec.models import Monitoring

__all__ = ["latency_finding", "rates_of", "slo_findings"]


def latency_finding(windows: Sequence[Window], budget_ms: float | None) -> LatencyFinding:
    """p50 and p99 per window (from each window's KLL sketch), the latest against the budget
    and the window before."""
    rows = []
    for w in windows:
        p50, p99 = (None, None)
        if w.latency.known:
            p50, p99 = (float(q) for q in w.latency.quantiles([0.5, 0.99]))
        rows.append(LatencyWindow(w.start, w.requests, p50, p99, w.slow))
    measured = [r for r in rows if r.p99 is not None]
    last = measured[-1] if measured else None
    previous = measured[-2] if len(measured) > 1 else None
    return LatencyFinding(
        p50=last.p50 if last else None,
        p99=last.p99 if last else None,
        budget_ms=budget_ms,
        previous_p99=previous.p99 if previous else None,
        windows=rows,
    )


def rates_of(windows: Sequence[Window]) -> Rates:
    """The period's fallback, degraded and error shares (shed requests are not in the log)."""
    requests = sum(w.requests for w in windows)

    def share(count: int) -> float | None:
        return count / requests if requests else None

    return Rates(
        requests=requests,
        fallback=share(sum(w.fallbacks for w in windows)),
        degraded=share(sum(w.degraded for w in windows)),
        error=share(sum(w.errors for w in windows)),
    )


def slo_findings(
    windows: Sequence[Window],
    spec: Monitoring,
    budget_ms: float | None,
    now: datetime,
    model: str | None = None,
) -> list[tuple[SloFinding, list[Alert]]]:
    """Each SLO's burn rates as of ``now`` from the windows' per-minute counts, its burn-rate
    alert (if any), and its burn per window (the latency SLO only with a budget)."""
    minutes: dict[str, list[int]] = {}
    for w in windows:
        for key, counts in w.minutes.items():
            held = minutes.setdefault(key, [0, 0, 0])
            for i, n in enumerate(counts[:3]):
                held[i] += int(n)
    found = []
    objectives: list[tuple[Literal["latency", "errors"], float | None]] = [
        ("latency", spec.slo.latency if budget_ms is not None else None),
        ("errors", spec.slo.errors),
    ]
    for name, objective in objectives:
        if objective is None:
            continue
        slo = SloSpec(name, objective, spec.slo.period)
        rates = burn_rates(minutes, slo, now)
        alerts = slo_alerts(rates, slo, now=now, model=model)
        status = cast(Literal["ok", "ticket", "page"], alerts[0].severity if alerts else "ok")
        history = [
            (w.start, (_bad(w, name) / w.requests) / slo.budget if w.requests else None)
            for w in windows
        ]
        finding = SloFinding(
            name, objective, slo.period.total_seconds() / 86400, rates, status, history
        )
        found.append((finding, alerts))
    return found


def _bad(window: Window, slo: str) -> int:
    return window.slow if slo == "latency" else window.errors
