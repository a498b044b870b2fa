"""report.html: the debrief as one self-contained page with inline SVG charts.

Inline CSS, inline SVG charts (drawn by :mod:`taxiway.sprint.charts`), no script, nothing
fetched. Every string in it comes from user data (names, evidence, fixes, answers), so every
one is escaped: cells go through :func:`_table`, which escapes whatever is not already markup
built here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from taxiway.lineage import LineageGraph, lineage_svg
from taxiway.sprint.assess import SOURCE_TITLES, SOURCES
from taxiway.sprint.charts import (
    STATUS_COLOURS,
    Bar,
    Budget,
    Segment,
    Span,
    bars_svg,
    stacked_bar_svg,
    timeline_svg,
)
from taxiway.sprint.debrief import PATHS, Debrief, higher_is_better
from taxiway.sprint.outcome import Phase
from taxiway.sprint.report.model import (
    _ANSWER_HEADERS,
    _APPROVAL_HEADERS,
    _BLOCKER_HEADERS,
    _CHECK_HEADERS,
    _FRESHNESS_HEADERS,
    _GATE_HEADERS,
    _IMPORTANCE_HEADERS,
    _NOT_MEASURED,
    _RECOMMEND_AUDIT_HEADERS,
    _RECOMMEND_HEADERS,
    _answer_rows,
    _approval_rows,
    _blocker_rows,
    _card_lines,
    _card_tables,
    _check_rows,
    _drill_line,
    _duration,
    _fact,
    _freshness_line,
    _freshness_rows,
    _gate_rows,
    _importance_rows,
    _load_line,
    _log_line,
    _model_line,
    _not_exercised,
    _number,
    _number_text,
    _recommend_audit_rows,
    _recommend_lines,
    _recommend_rows,
    _source_counts,
    _text,
    _yes,
)


class _Safe(str):
    """Markup built here from escaped parts: :func:`_table` inserts it as is."""


def _e(value: Any) -> str:
    return html.escape(_text(value), quote=True)


_BACKTICKED = re.compile(r"`([^`\n]+)`")


def _prose(value: Any) -> str:
    """Text for an element's content: escaped, with each `command` or `key:` set in
    ``<code>``, as Markdown shows it (an attribute takes :func:`_e`)."""
    return _BACKTICKED.sub(r"<code>\1</code>", _e(value))


def render_html(debrief: Debrief) -> str:
    """The debrief as one self-contained HTML page with inline SVG charts."""
    d = debrief
    served = f" at <code>{_e(d.served_url)}</code>" if d.deployed and d.served_url else ""
    sections = [
        _section("questions", "The five questions", _questions_table(d)),
        _section("phases", "Phases", _timeline_html(d.phases) + _checks_table(d.phases)),
        _section("blockers", "Blockers", _blockers_table(d)),
        _section(
            "model", "Model versus baseline", _model_html(_fact(d, "model"), d.leaking_inputs)
        ),
        _section("audit", "Handoff audit", _audit_html(_fact(d, "audit")) + _importance_html(d)),
        _section("lineage", "Lineage", _lineage_html(_fact(d, "lineage"))),
        _section("card", "Model card", _card_html(_fact(d, "card"))),
        *(
            [_section("recommend", "Recommendations", _recommend_html(d))]
            if _fact(d, "recommend")
            else []
        ),
        _section("load", "Load test", _load_html(_fact(d, "load"), _fact(d, "prediction_log"))),
        _section("drill", "Fault drill", _drill_html(_fact(d, "drill"))),
        *(
            [_section("freshness", "Stream freshness", _freshness_html(found))]
            if (found := _fact(d, "freshness"))
            else []
        ),
        _section("approvals", "Approvals", _approvals_html(_fact(d, "approvals"))),
        _section("gates", "Monitoring and rollout", _gates_html(d)),
        *(
            [_section("history", "Model history", _history_html(history))]
            if (history := _fact(d, "history"))
            else []
        ),
        _section("readiness", "Readiness assessment", _readiness_html(d.assessment)),
    ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sprint debrief: {_e(d.project)}</title>
<style>{_CSS}</style></head><body>
<header><h1>Sprint debrief: {_e(d.project)}</h1>
<p class="verdict path-{d.path}" id="verdict">{_prose(d.verdict)}</p>{_not_exercised_html(d)}
<dl class="summary">
<dt>path</dt><dd id="path">{d.path}: {_e(PATHS[d.path])}</dd>
<dt>deployed</dt><dd id="deployed">{_e(_yes(d.deployed))}{served}</dd>
<dt>spec</dt><dd><code>{_e(d.spec_path)}</code></dd>
<dt>ran</dt><dd>{_e(d.started_at)} to {_e(d.finished_at)}</dd>
</dl></header>
{"".join(sections)}
</body></html>
"""


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>\n{body}\n</section>\n'


def _table(
    table_id: str, headers: list[str], rows: list[list[Any]], row_classes: list[str] | None = None
) -> _Safe:
    """A table; every cell is escaped unless it is :class:`_Safe` markup."""
    if not rows:
        return _Safe(f'<p class="missing" id="{table_id}">none</p>')
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{_e(row_classes[i])}"' if row_classes else ""
        cells = "".join(f"<td>{c if isinstance(c, _Safe) else _prose(c)}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return _Safe(
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _missing(text: str = _NOT_MEASURED) -> str:
    return f'<p class="missing">{_prose(text)}</p>'


def _questions_table(d: Debrief) -> str:
    rows = []
    for number, q in enumerate(d.questions(), start=1):
        evidence = "".join(f"<li>{_prose(item)}</li>" for item in q["evidence"])
        rows.append(
            [number, q["question"], q["answer"], _Safe(f"<ul>{evidence}</ul>" if evidence else "")]
        )
    return _table("questions-table", ["#", "question", "answer", "evidence"], rows)


def _checks_table(phases: Sequence[Phase]) -> str:
    classes = [f"status-{c.status}" for p in phases for c in p.checks]
    return _table("checks-table", _CHECK_HEADERS, _check_rows(phases), classes)


def _blockers_table(d: Debrief) -> str:
    classes = ["critical" if b.critical_path else "off-path" for b in d.blockers]
    return _table("blockers-table", _BLOCKER_HEADERS, _blocker_rows(d), classes)


def _model_html(model: dict[str, Any] | None, leaking: list[str]) -> str:
    if not model:
        return _missing()
    metric = _text(model.get("metric"))
    direction = "higher is better" if higher_is_better(metric) else "lower is better"
    bars = [
        _bar(
            f"model v{_text(model.get('version'))} ({_text(model.get('algorithm'))})",
            model.get("model"),
            "model",
        ),
        _bar("baseline", model.get("baseline"), "baseline"),
    ]
    chart = bars_svg("chart-model", f"{metric} ({direction})", bars, unit="", budget=None)
    return f"<p>{_prose(_model_line(model, leaking))}</p>{chart}"


def _audit_html(audit: dict[str, Any] | None) -> str:
    if not audit:
        return _missing()
    findings = audit.get("findings") or []
    rows = [[f.get("check"), f.get("severity"), f.get("message"), f.get("fix")] for f in findings]
    classes = [f"severity-{_text(f.get('severity'))}" for f in findings]
    head = "blocked" if audit.get("blocked") else "not blocked"
    table = _table("audit-table", ["check", "severity", "finding", "fix"], rows, classes)
    return f"<p>{_e(head)}: {len(findings)} finding(s)</p>{table}"


def _lineage_html(lineage: dict[str, Any] | None) -> str:
    """The registered version's lineage graph as an inline SVG, layered from contracts to the
    service (the same graph as `taxiway lineage`)."""
    if not lineage:
        return _missing()
    graph = LineageGraph.from_dict(lineage)
    return f"<p>{_e(graph.title)}</p>{lineage_svg(graph)}"


def _importance_html(d: Debrief) -> str:
    rows = _importance_rows(_fact(d, "model"))
    return str(_table("importance-table", _IMPORTANCE_HEADERS, rows)) if rows else ""


def _card_html(card: dict[str, Any] | None) -> str:
    if not card:
        return _missing()
    items = "".join(f"<li>{_prose(line)}</li>" for line in _card_lines(card))
    tables = "".join(
        f"<p>{_prose(caption)}</p>" + _table(f"card-table-{i}", headers, rows)
        for i, (caption, headers, rows) in enumerate(_card_tables(card))
    )
    return f"<ul>{items}</ul>{tables}"


def _recommend_html(d: Debrief) -> str:
    """The recommender's metrics against popularity and the ceiling, its facts, its audit."""
    recommend, audit = _fact(d, "recommend") or {}, _fact(d, "audit")
    metrics = _table("recommend-table", _RECOMMEND_HEADERS, _recommend_rows(recommend))
    facts = "".join(f"<li>{_prose(line)}</li>" for line in _recommend_lines(d))
    checks = (
        _table("recommend-audit-table", _RECOMMEND_AUDIT_HEADERS, _recommend_audit_rows(audit))
        if audit
        else ""
    )
    return f"{metrics}<ul>{facts}</ul>{checks}"


def _load_html(load: dict[str, Any] | None, logged: dict[str, Any] | None) -> str:
    if not load:
        return _missing()
    bars = [
        _bar("clients p50", load.get("client_p50_ms"), "p50"),
        _bar("clients p99 (the gate)", load.get("client_p99_ms"), "p99"),
        _bar("service's own p99", load.get("p99_ms"), "server-p99"),
    ]
    chart = bars_svg(
        "chart-load", "latency (ms)", bars, unit=" ms", budget=_budget(load.get("budget_ms"))
    )
    return f"<p>{_prose(_load_line(load))}</p><p>{_prose(_log_line(logged))}</p>{chart}"


def _drill_html(drill: dict[str, Any] | None) -> str:
    if not drill:
        return _missing()
    if drill.get("not_run"):
        return f"<p>{_prose(_drill_line(drill))}</p>"
    latency = bars_svg(
        "chart-drill-latency",
        "p99 latency with the dependency down (ms)",
        [
            _bar("clients p99 (the gate)", drill.get("client_p99_ms"), "p99"),
            _bar("service's own p99", drill.get("p99_ms"), "server-p99"),
        ],
        unit=" ms",
        budget=_budget(drill.get("budget_ms")),
    )
    return f"<p>{_prose(_drill_line(drill))}</p>{_drill_chart(drill)}{latency}"


def _freshness_html(found: dict[str, Any]) -> str:
    rows = _freshness_rows(found)
    table = _table("freshness-table", _FRESHNESS_HEADERS, rows) if rows else ""
    return f"{table}<p>{_prose(_freshness_line(found))}</p>"


def _history_html(history: dict[str, Any]) -> str:
    items = "".join(f"<li>{_e(str(line))}</li>" for line in history.get("lines", []))
    return f'<ul id="history-list">{items}</ul>'


def _approvals_html(approvals: dict[str, Any] | None) -> str:
    if not approvals:
        return _missing()
    rows = _approval_rows(approvals)
    classes = ["signed" if row[1] == "yes" else "unsigned" for row in rows]
    return _table("approvals-table", _APPROVAL_HEADERS, rows, classes)


def _gates_html(d: Debrief) -> str:
    rows = _gate_rows(d)
    if not rows:
        return _missing()
    return _table("gates-table", _GATE_HEADERS, rows, [f"gate-{row[1]}" for row in rows])


def _not_exercised_html(d: Debrief) -> str:
    if not d.not_exercised:
        return ""
    return f'<p class="not-exercised" id="not-exercised">not exercised: {_e(_not_exercised(d))}</p>'


def _readiness_html(assessment: dict[str, Any] | None) -> str:
    if not assessment:
        return _missing("not assessed: run `taxiway assess` to add it")
    a = assessment
    notes = "".join(f"<li>next level: {_prose(n)}</li>" for n in a.get("level_notes") or [])
    answers = a.get("answers") or []
    table = "".join(
        f"<h3>{_e(SOURCE_TITLES[source])}</h3>"
        + _table(
            f"readiness-{source}",
            _ANSWER_HEADERS,
            _answer_rows(a, source),
            [f"source-{source}" for x in answers if x.get("source") == source],
        )
        for source in SOURCES
    )
    return (
        f'<p class="level" id="level">Level {_e(a.get("level"))} of 5: {_e(a.get("name"))} '
        f"({_e(a.get('yes_count'))} yes)</p>"
        f'<dl class="facts"><dt>meaning</dt><dd>{_e(a.get("meaning"))}</dd>'
        f"<dt>typical success rate</dt><dd>{_e(a.get('success_rate'))}</dd>"
        f"<dt>time per model</dt><dd>{_e(a.get('time_per_model'))}</dd></dl>"
        f"<ul>{notes}</ul><p>{_e(_source_counts(answers))}</p>{table}"
    )


# --- chart data -------------------------------------------------------------------------


def _timeline_html(phases: Sequence[Phase]) -> str:
    spans = [Span(p.name, p.status, p.duration_s, _duration(p.duration_s)) for p in phases]
    return timeline_svg(spans, _duration(sum(p.duration_s for p in phases)))


def _bar(label: str, value: Any, name: str) -> Bar:
    """A bar for ``value`` as the facts hold it: anything not a number is drawn empty."""
    return Bar(label, _number(value), _number_text(_number(value)), name)


def _budget(value: Any) -> Budget | None:
    number = _number(value)
    return None if number is None else Budget(number, _number_text(number))


def _drill_chart(drill: dict[str, Any]) -> str:
    """One stacked bar of the drill's requests: answered by the model, answered by the
    fallback (degraded answers are answers, as the text says), errors."""
    requests = _number(drill.get("requests")) or 0.0
    degraded = _number(drill.get("degraded")) or 0.0
    errors = _number(drill.get("errors")) or 0.0
    counts = [
        ("answered by the model", max(requests - degraded - errors, 0.0), STATUS_COLOURS["pass"]),
        ("answered by the fallback", degraded, STATUS_COLOURS["warn"]),
        ("errors", errors, STATUS_COLOURS["fail"]),
    ]
    segments = [Segment(name, count, _number_text(count), colour) for name, count, colour in counts]
    caption = f"{_number_text(requests)} requests"
    return stacked_bar_svg("chart-drill", "fault drill requests", caption, segments)


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 74rem; margin: 2rem auto; padding: 0 1rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td ul { margin: 0; padding-left: 1.1rem; }
code { font-family: ui-monospace, monospace; }
.verdict { font-size: 1.15rem; padding: .6rem .8rem; border-left: 6px solid #9e9e9e; }
.path-1 { border-color: #2e7d32; background: #e8f5e9; }
.path-2 { border-color: #f9a825; background: #fff8e1; }
.path-3 { border-color: #c62828; background: #ffebee; }
.summary dt { float: left; clear: left; width: 6rem; color: #555; }
.summary dd { margin-left: 6.5rem; }
.facts dt { float: left; clear: left; width: 11rem; color: #555; }
.facts dd { margin-left: 11.5rem; }
.missing { color: #666; font-style: italic; }
tr.critical td:nth-child(3), tr.status-fail td:nth-child(3), tr.unsigned td:nth-child(2),
tr.severity-blocker td:nth-child(2) { color: #b71c1c; font-weight: 600; }
tr.source-declared td:nth-child(4) { color: #8d6e00; }
tr.source-observed td:nth-child(4) { color: #1b5e20; }
tr.gate-warn td:nth-child(2), .not-exercised { color: #8d6e00; }
tr.gate-fail td:nth-child(2) { color: #b71c1c; font-weight: 600; }
.not-exercised { font-weight: 600; }
.chart { display: block; margin: .6rem 0; max-width: 100%; height: auto; }
.chart text { font: 12px system-ui, sans-serif; fill: #1b1b1b; }
.chart rect[data-name="model"], .chart rect[data-name="p50"] { fill: #1565c0; }
.chart rect[data-name="baseline"], .chart rect[data-name="p99"] { fill: #90a4ae; }
.chart rect[data-name="server-p99"] { fill: #b0bec5; }
.chart rect.over { fill: #c62828; }
.chart .budget { stroke: #c62828; stroke-width: 2; stroke-dasharray: 5 3; }
.chart .axis { stroke: #777; }
"""
