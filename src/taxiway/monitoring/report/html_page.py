"""monitor.html: the monitor's findings as one self-contained page with inline SVG charts.

Inline CSS, inline SVG (:mod:`taxiway.monitoring.report.svg`), no script, nothing fetched.
Feature names, alert texts and sources are data, so every string is escaped. The tables hold
the same rows as the Markdown (:mod:`taxiway.monitoring.report.model`); the charts draw
each drifted feature against its reference, drift over time, latency and burn rate per
window, and estimated against realised quality.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from taxiway.monitoring.report.model import DriftFinding, MonitorReport
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
    window_label,
)
from taxiway.monitoring.report.svg import (
    CURRENT_COLOUR,
    REFERENCE_COLOUR,
    Guide,
    Series,
    lines_svg,
    paired_bars_svg,
    status_grid_svg,
)

__all__ = ["render_html"]

_SLO_COLOURS = ("#6a1b9a", "#ef6c00", "#00838f")


def render_html(report: MonitorReport) -> str:
    """The report as one HTML page: no script, nothing fetched, every string escaped.

    >>> from taxiway.monitoring.report.model import _example
    >>> page = render_html(_example())
    >>> "<script" in page, 'id="headline"' in page, "http" in page.replace("http://www.w3.org", "")
    (False, True, False)
    """
    r = report
    healthy = "healthy" if r.healthy else "alert"
    sections = [
        _section("alerts", "Alerts", _table("alerts-table", ALERT_HEADERS, alert_rows(r), 0)),
        _section("drift", "Drift", _drift_html(r)),
        _section("latency", "Latency and rates", _latency_html(r)),
        _section("slo", "SLOs", _slo_html(r)),
        _section("quality", "Quality", _quality_html(r)),
    ]
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    k, m = r.hysteresis
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Monitor: {_e(r.model)} v{r.version}</title>
<style>{_CSS}</style></head><body>
<header><h1>Monitor: {_e(r.model)} v{r.version}</h1>
<p class="headline {healthy}" id="headline">{_e(headline(r))}</p>
<ul><li>a status changes when {k} of the last {m} windows are over the threshold
({_e(r.threshold_mode)})</li><li>generated at {r.generated_at:%Y-%m-%d %H:%M:%S} UTC</li>{notes}</ul>
</header>
{"".join(sections)}
</body></html>
"""


def _drift_html(r: MonitorReport) -> str:
    table = _table("drift-table", DRIFT_HEADERS, drift_rows(r), 4)
    findings = [*r.features, *([r.output] if r.output is not None else [])]
    windows = [window_label(w.start) for w in r.latency.windows]
    grid = ""
    if findings and windows:
        cells = [_cells(f, len(windows)) for f in findings]
        grid = "<h3>Drift over time</h3>" + status_grid_svg(
            "chart-drift-grid", "status per feature and window", [f.name for f in findings],
            windows, cells,
        )  # fmt: skip
    details = "".join(_feature_html(f, windows) for f in findings if f.status != "ok")
    return table + grid + details


def _cells(f: DriftFinding, count: int) -> list[str]:
    cells = [h.status if h.judged else "unjudged" for h in f.history]
    return (["unjudged"] * count + cells)[-count:] if len(cells) < count else cells[-count:]


def _feature_html(f: DriftFinding, windows: Sequence[str]) -> str:
    slug = _slug(f.name)
    bars = paired_bars_svg(
        f"chart-dist-{slug}",
        f"{f.name}: the period against its reference",
        f.reference.labels,
        f.reference.shares,
        _aligned(f.reference.labels, f.current.labels, f.current.shares),
    )
    labels = [window_label(h.start) for h in f.history]
    over_time = lines_svg(
        f"chart-drift-{slug}",
        f"{f.name}: {f.statistic} per window against its threshold",
        labels or list(windows),
        [
            Series(f.statistic, [h.value for h in f.history], CURRENT_COLOUR),
            Series("threshold", [h.threshold for h in f.history], "#c62828", dashed=True),
        ],
    )
    where = f" (source: {_e(f.source)})" if f.source else ""
    return (
        f'<div class="feature status-{f.status}" data-feature="{_e(f.name)}">'
        f"<h3>{_e(f.name)}: {_e(f.status)}{where}</h3><p>{_e(f.why)}</p>{bars}{over_time}</div>"
    )


def _aligned(labels: Sequence[str], other: Sequence[str], shares: Sequence[float]) -> list[float]:
    """``shares`` (of ``other``'s labels) in the order of ``labels`` (0 where absent)."""
    by_label = dict(zip(other, shares, strict=True))
    return [by_label.get(label, 0.0) for label in labels]


def _latency_html(r: MonitorReport) -> str:
    lat = r.latency
    windows = [window_label(w.start) for w in lat.windows]
    guides = [] if lat.budget_ms is None else [Guide(lat.budget_ms, f"budget {lat.budget_ms:g} ms")]
    chart = lines_svg(
        "chart-latency",
        "latency per window (ms)",
        windows,
        [
            Series("p50", [w.p50 for w in lat.windows], REFERENCE_COLOUR),
            Series("p99", [w.p99 for w in lat.windows], CURRENT_COLOUR),
        ],
        guides=guides,
        unit=" ms",
    )
    return (
        f'<p id="latency-line">{_e(latency_line(lat))}</p><p id="rates-line">'
        f"{_e(rates_line(r.rates))}</p>{chart}"
        + _table("latency-table", LATENCY_HEADERS, latency_rows(lat), None)
    )


def _slo_html(r: MonitorReport) -> str:
    table = _table("slo-table", SLO_HEADERS, slo_rows(r), 7)
    if not r.slo:
        return table
    windows = [window_label(t) for t, _ in r.slo[0].history]
    series = [
        Series(s.name, [b for _, b in s.history], _SLO_COLOURS[i % len(_SLO_COLOURS)])
        for i, s in enumerate(r.slo)
    ]
    chart = lines_svg(
        "chart-burn",
        "burn rate per window (1 spends the budget exactly over the period)",
        windows,
        series,
        guides=[Guide(1.0, "1x", "#9e9e9e"), Guide(6.0, "6x", "#ef6c00"), Guide(14.4, "14.4x")],
        unit="x",
    )
    return table + chart


def _quality_html(r: MonitorReport) -> str:
    q = r.quality
    items = "".join(f"<li>{_e(line)}</li>" for line in quality_lines(q))
    chart = ""
    if q.history and any(p.estimated is not None or p.realised is not None for p in q.history):
        guides = [] if q.minimum is None else [Guide(q.minimum, f"page below {q.minimum:.4g}")]
        chart = lines_svg(
            "chart-quality",
            f"{q.metric or 'quality'} per window: estimated and realised",
            [window_label(p.start) for p in q.history],
            [
                Series("estimated", [p.estimated for p in q.history], REFERENCE_COLOUR, True),
                Series("realised", [p.realised for p in q.history], CURRENT_COLOUR),
            ],
            guides=guides,
        )
    return f'<ul id="quality-lines">{items}</ul>{chart}'


def _table(
    table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]], status_column: int | None
) -> str:
    """A table of escaped cells; each row's class is its status (severity) column's value."""
    if not rows:
        return f'<p class="missing" id="{table_id}">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cls = "" if status_column is None else f' class="row-{_e(row[status_column])}"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
        "</tbody></table>"
    )


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>\n{body}\n</section>\n'


def _slug(name: str) -> str:
    """An id part: ``(output)`` → ``output``, ``a b`` → ``a-b``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "feature"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 74rem; margin: 2rem auto; padding: 0 1rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.headline { font-size: 1.15rem; padding: .6rem .8rem; border-left: 6px solid #2e7d32;
            background: #e8f5e9; }
.headline.alert { border-color: #c62828; background: #ffebee; }
.missing { color: #666; font-style: italic; }
tr.row-drift td:nth-child(5), tr.row-page td:first-child { color: #b71c1c; font-weight: 600; }
tr.row-warn td:nth-child(5), tr.row-ticket td:first-child { color: #8d6e00; font-weight: 600; }
.feature { border-top: 1px dashed #ccc; margin-top: 1rem; }
.chart { display: block; margin: .6rem 0; max-width: 100%; height: auto; }
.chart text { fill: #1b1b1b; }
"""
