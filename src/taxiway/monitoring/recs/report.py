"""The recommendation monitor's report: one model of the findings, laid out as JSON
(``monitor.json``), Markdown (``monitor.md``) and the terminal summary, so they never disagree.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     [p.name for p in write_report(_example(), Path(tmp))]
['monitor.json', 'monitor.md']
>>> summary_lines(_example())[0]
'shop v1: healthy over 1 window(s), 120 answers (2026-12-06 05:00 to 06:00 UTC)'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taxiway.monitoring.alerts import Alert
from taxiway.monitoring.recs.findings import (
    CatalogFinding,
    ClickThrough,
    FallbackFinding,
    MixFinding,
    QualityFinding,
)
from taxiway.monitoring.report.model import FIRING, LatencyFinding, SloFinding
from taxiway.monitoring.report.rows import latency_line, number_text, window_label

__all__ = ["RecsReport", "render_markdown", "summary_lines", "write_report"]


@dataclass(frozen=True)
class RecsReport:
    """What one run of the recommendation monitor found (see :mod:`taxiway.monitoring.recs`)."""

    model: str
    version: int
    generated_at: datetime
    start: datetime
    end: datetime
    windows: int
    answers: int
    window_s: float
    hysteresis: tuple[int, int]
    fallback: FallbackFinding
    catalog: CatalogFinding
    click_through: ClickThrough
    quality: QualityFinding
    mixes: list[MixFinding]
    latency: LatencyFinding
    slo: list[SloFinding]
    alerts: list[Alert]
    state: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No page or ticket is firing."""
        return not any(a.severity in FIRING for a in self.alerts)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report."""
        k, m = self.hysteresis
        return {
            "kind": "recommend",
            "model": self.model,
            "version": self.version,
            "generated_at": self.generated_at.isoformat(),
            "period": {
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "windows": self.windows,
                "answers": self.answers,
            },
            "window_s": self.window_s,
            "hysteresis": {"k": k, "m": m},
            "answers": self.fallback.to_json(),
            "catalog": self.catalog.to_json(),
            "click_through": self.click_through.to_json(),
            "quality": self.quality.to_json(),
            "mix": [x.to_json() for x in self.mixes],
            "latency": self.latency.to_json(),
            "slo": [s.to_json() for s in self.slo],
            "alerts": [a.to_dict() for a in self.alerts],
            "state": self.state,
            "notes": self.notes,
            "healthy": self.healthy,
        }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def headline(r: RecsReport) -> str:
    """``shop v1: ALERT (1 page) over 3 window(s), 4,200 answers (… UTC)``."""
    firing = [a for a in r.alerts if a.severity in FIRING]
    state = "healthy"
    if firing:
        counts = {s: sum(a.severity == s for a in firing) for s in FIRING}
        state = "ALERT (" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ")"
    span = f"{window_label(r.start)} to {r.end:%H:%M} UTC"
    return f"{r.model} v{r.version}: {state} over {r.windows} window(s), {r.answers:,} answers ({span})"


def _lines(r: RecsReport) -> list[str]:
    """The findings as lines, shared by the summary and the Markdown."""
    f, c, q = r.fallback, r.catalog, r.quality
    reasons = ", ".join(f"{k} {_pct(v)}" for k, v in f.by_reason.items() if k != "none")
    lines = [
        f"answers: fallback {_pct(f.fallback_share)} (model fallbacks {_pct(f.model_fallback_share)}"
        f", {f.status}, over {f.threshold:.0%} in a window is over), degraded "
        f"{_pct(f.degraded_share)}; by reason: {reasons or 'none'}",
        f"users: unknown {_pct(f.unknown_user_share)}; recent_items sent with "
        f"{f.recent_answers:,} answers, {f.recent_items:,} items, unknown to the catalog "
        f"{_pct(f.unknown_recent_share)}",
        f"catalog: coverage {_pct(c.coverage)} of {c.available:,} available items "
        f"({c.shown:,} distinct shown), gini {number_text(c.gini)}"
        + (
            f"; evaluation: coverage {_pct(c.training.get('coverage'))}, gini "
            f"{number_text(c.training.get('gini'))} (its lists, the whole catalog)"
            if c.training
            else ""
        ),
    ]
    for mix in r.mixes:
        lines.append(
            f"served {mix.name}: {mix.status}, {mix.statistic} {number_text(mix.value)} "
            f"(threshold {number_text(mix.threshold)}), {mix.why}; against {mix.reference_source}"
        )
    known = q.known_realised
    lines.append(
        f"realised {q.metric} (interactions within {q.horizon_days:g} days after the answer): "
        + (
            f"{number_text(q.realised)} over {q.relevant:,} answers; known users "
            f"{number_text(known)} over {q.known_relevant:,}"
            if q.relevant
            else f"none yet ({q.judged:,} answers judged)"
        )
        + f"; evaluation {number_text(q.reference)}"
        + (f"; pages below {number_text(q.minimum)}" if q.minimum is not None else "")
        + f"; {q.pending:,} answers wait for their horizon"
    )
    ct = r.click_through
    for name, rows in ct.names.items():
        shown = "; ".join(
            f"{row['position']}: {_pct(row['rate'])} [{row['low']:.2%}, {row['high']:.2%}]"
            for row in rows[:5]
        )
        lead = " (the rollout metric)" if name == ct.metric else ""
        lines.append(f"click-through {name}{lead} by position: {shown}")
    if not ct.names:
        lines.append("click-through: no outcome joined to a shown item yet")
    lines.append(latency_line(r.latency))
    for s in r.slo:
        burns = ", ".join(f"{w} {number_text(b)}" for w, b in s.burn.items())
        lines.append(
            f"SLO {s.name} ({s.objective * 100:.6g}% over {s.period_days:g}d): {s.status}; burn {burns}"
        )
    return lines


def summary_lines(report: RecsReport) -> list[str]:
    """The terminal summary: the headline, the alerts, the findings, the notes."""
    out = [headline(report), ""]
    out += [a.text + (f" (look at {a.where})" if a.where else "") for a in report.alerts]
    if report.alerts:
        out.append("")
    out += _lines(report)
    out += [f"note: {n}" for n in report.notes]
    return out


def render_markdown(report: RecsReport) -> str:
    """``monitor.md``: the summary as Markdown with a table per window."""
    r = report
    k, m = r.hysteresis
    lines = [f"# Monitor: {r.model} v{r.version} (recommendations)", "", f"**{headline(r)}**", ""]
    lines.append(
        f"- windows of {timedelta(seconds=r.window_s)}; a status changes when {k} of the last "
        f"{m} judged windows agree"
    )
    lines += ["", "## Alerts", ""]
    lines += [f"- **{a.severity}** {a.title}: {a.detail}" for a in r.alerts] or ["- none"]
    lines += ["", "## Findings", ""] + [f"- {line}" for line in _lines(r)]
    lines += ["", "## Windows", "", "| window | answers | model fallbacks | coverage | gini |"]
    lines.append("|---|---|---|---|---|")
    for h, cat in zip(r.fallback.history, r.catalog.history, strict=False):
        lines.append(
            f"| {window_label(h.start)} | {h.rows:,} | {_pct(h.value)} | "
            f"{_pct(cat.get('coverage'))} | {number_text(cat.get('gini'))} |"
        )
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


def write_report(report: RecsReport, out: Path) -> list[Path]:
    """Write ``monitor.json`` and ``monitor.md`` into ``out`` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "monitor.json", out / "monitor.md"]
    document = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
    paths[0].write_text(document + "\n", encoding="utf-8")
    paths[1].write_text(render_markdown(report), encoding="utf-8")
    return paths


def _example() -> RecsReport:
    """A small report for the doctests."""
    from taxiway.monitoring.recs.findings import (
        catalog_finding,
        click_through,
        fallback_finding,
        quality_finding,
    )
    from taxiway.monitoring.recs.inputs import CatalogFacts
    from taxiway.monitoring.recs.windows import RecsWindow
    from taxiway.spec.models import Monitoring

    t = datetime(2026, 12, 6, 5, tzinfo=UTC)
    w = RecsWindow(t, t + timedelta(hours=1), answers=120, paths={"model": 120},
                   items={"a": 60, "b": 60}, shown=[120])  # fmt: skip
    import numpy as np

    catalog = CatalogFacts(("a", "b"), frozenset({"a", "b"}), np.array([2.0, 1.0]))
    return RecsReport(
        model="shop",
        version=1,
        generated_at=t,
        start=w.start,
        end=w.end,
        windows=1,
        answers=120,
        window_s=3600.0,
        hysteresis=(2, 3),
        fallback=fallback_finding([w], w, 2, 3, watch=Monitoring().recommend),
        catalog=catalog_finding([w], w, catalog, {}),
        click_through=click_through(w, None),
        quality=quality_finding(
            [w],
            w,
            k=10,
            horizon_days=7,
            metrics={},
            monitoring=Monitoring(),
            pending=0,
            judged_until=None,
        ),
        mixes=[],
        latency=LatencyFinding(None, None, None, None, []),
        slo=[],
        alerts=[],
    )
