"""The sprint report: report.md for a terminal, report.html with charts, report.json for tools.

The HTML page is one self-contained file: inline CSS, inline SVG charts (drawn by
:mod:`taxiway.sprint.charts`), no script, nothing fetched. Every string in it comes from user
data (names, evidence, fixes, answers), so every one is escaped: cells go through
:func:`_table`, which escapes whatever is not already markup built here.

>>> from taxiway.sprint.outcome import Check, Phase
>>> d = Debrief("shop", "taxiway.yaml", "09:00", "09:03",
...             [Phase("data_access", [Check("read <orders>", "pass")], 1.0)], deployed=False)
>>> render_markdown(d).splitlines()[0]
'# Sprint debrief: shop'
>>> page = render_html(d)
>>> 'id="chart-timeline"' in page, "read &lt;orders&gt;" in page, "<script" in page
(True, True, False)
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taxiway.models.metrics import HIGHER_IS_BETTER
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
from taxiway.sprint.debrief import PATHS, Debrief
from taxiway.sprint.outcome import Phase

__all__ = ["STATUS_COLOURS", "render_html", "render_markdown", "write_report"]

_NOT_MEASURED = "not measured: the sprint did not get this far"
_CHECK_HEADERS = ["phase", "check", "status", "detail", "duration"]
_BLOCKER_HEADERS = [
    "phase", "category", "critical path", "blocker", "evidence", "fix", "who acts", "estimate"
]  # fmt: skip
_APPROVAL_HEADERS = ["role", "signed", "by", "at", "note"]
_ANSWER_HEADERS = ["area", "question", "answer", "by", "evidence"]
_GATE_HEADERS = ["gate", "status", "declared", "observed", "evidence"]
_GATES = (("monitoring", "monitoring"), ("rollout", "gradual rollout"))


def write_report(debrief: Debrief, folder: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``report.json`` into ``folder`` (created).

    Returns their paths under the keys ``md``, ``html`` and ``json``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "report.json"}
    paths["md"].write_text(render_markdown(debrief), encoding="utf-8")
    paths["html"].write_text(render_html(debrief), encoding="utf-8")
    document = json.dumps(debrief.as_dict(), indent=2, ensure_ascii=False)
    paths["json"].write_text(document + "\n", encoding="utf-8")
    return paths


# --- Markdown -----------------------------------------------------------------------------


def render_markdown(debrief: Debrief) -> str:
    """The debrief as Markdown, readable as plain text in a terminal."""
    d = debrief
    deployed = f"yes, at {d.served_url}" if d.deployed and d.served_url else _yes(d.deployed)
    lines = [
        f"# Sprint debrief: {d.project}",
        "",
        f"**{d.verdict}**",
        "",
        *([f"- not exercised: {_not_exercised(d, '`')}"] if d.not_exercised else []),
        f"- path: {d.path}, {PATHS[d.path]}",
        f"- deployed: {deployed}",
        f"- spec: {d.spec_path}",
        f"- ran: {d.started_at} to {d.finished_at}",
        "",
        "## The five questions",
        "",
    ]
    for number, q in enumerate(d.questions(), start=1):
        lines += [f"{number}. **{q['question']}**", f"   {q['answer']}"]
        lines += [f"   - {item}" for item in q["evidence"]]
    lines += ["", "## Phases", "", "```text", *_ascii_timeline(d.phases), "```", ""]
    lines += [*_md_table(_CHECK_HEADERS, _check_rows(d.phases)), ""]
    lines += ["## Blockers", "", *_md_table(_BLOCKER_HEADERS, _blocker_rows(d)), ""]
    for title, body in _md_facts(d):
        lines += [f"## {title}", "", *body, ""]
    lines += ["## Readiness assessment", "", *_md_readiness(d.assessment), ""]
    return "\n".join(lines)


def _ascii_timeline(phases: Sequence[Phase], width: int = 40) -> list[str]:
    total = sum(p.duration_s for p in phases) or 1.0
    rows, offset = [], 0.0
    for p in phases:
        start = round(offset / total * width)
        length = max(1, round(p.duration_s / total * width))
        bar = " " * start + "█" * length
        rows.append(f"{p.name:<18} {bar:<{width + 1}} {_duration(p.duration_s):>9}  {p.status}")
        offset += p.duration_s
    return rows


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["none"]
    head = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    body = ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return [*head, *body]


def _md_cell(value: Any) -> str:
    return _text(value).replace("|", "\\|").replace("\n", " ")


def _md_facts(d: Debrief) -> list[tuple[str, list[str]]]:
    model, audit = _fact(d, "model"), _fact(d, "audit")
    load, drill, approvals = _fact(d, "load"), _fact(d, "drill"), _fact(d, "approvals")
    sections: list[tuple[str, list[str]]] = [
        ("Model versus baseline", [_model_line(model, d.leaking_inputs)] if model
         else [_NOT_MEASURED]),
        ("Handoff audit", _md_audit(audit) if audit else [_NOT_MEASURED]),
        ("Load test", _md_load(load, _fact(d, "prediction_log")) if load else [_NOT_MEASURED]),
        ("Fault drill", [_drill_line(drill)] if drill else [_NOT_MEASURED]),
        ("Approvals", _md_approvals(approvals) if approvals else [_NOT_MEASURED]),
        ("Monitoring and rollout", _md_table(_GATE_HEADERS, _gate_rows(d)) if _gate_rows(d)
         else [_NOT_MEASURED]),
    ]  # fmt: skip
    return sections


def _md_load(load: dict[str, Any], logged: dict[str, Any] | None) -> list[str]:
    return [f"- {_load_line(load)}", f"- {_log_line(logged)}"]


def _md_audit(audit: dict[str, Any]) -> list[str]:
    findings = audit.get("findings") or []
    rows = [[f.get("check"), f.get("severity"), f.get("message"), f.get("fix")] for f in findings]
    head = "blocked" if audit.get("blocked") else "not blocked"
    return [
        f"{head}: {len(findings)} finding(s)",
        "",
        *_md_table(["check", "severity", "finding", "fix"], rows),
    ]


def _md_approvals(approvals: dict[str, Any]) -> list[str]:
    return _md_table(_APPROVAL_HEADERS, _approval_rows(approvals))


def _md_readiness(assessment: dict[str, Any] | None) -> list[str]:
    if not assessment:
        return ["not assessed: run `taxiway assess` to add it"]
    a = assessment
    lines = [
        f"Level {_text(a.get('level'))} of 5: {_text(a.get('name'))} "
        f"({_text(a.get('yes_count'))} yes)",
        "",
        f"- meaning: {_text(a.get('meaning'))}",
        f"- typical success rate: {_text(a.get('success_rate'))}",
        f"- time per model: {_text(a.get('time_per_model'))}",
        *(f"- next level: {note}" for note in a.get("level_notes") or []),
        "",
        _source_counts(a.get("answers") or []),
        "",
    ]
    for source in SOURCES:
        lines += [f"### {SOURCE_TITLES[source]}", ""]
        lines += [*_md_table(_ANSWER_HEADERS, _answer_rows(a, source)), ""]
    return lines


# --- HTML ---------------------------------------------------------------------------------


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
        _section("audit", "Handoff audit", _audit_html(_fact(d, "audit"))),
        _section("load", "Load test", _load_html(_fact(d, "load"), _fact(d, "prediction_log"))),
        _section("drill", "Fault drill", _drill_html(_fact(d, "drill"))),
        _section("approvals", "Approvals", _approvals_html(_fact(d, "approvals"))),
        _section("gates", "Monitoring and rollout", _gates_html(d)),
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
    direction = "higher is better" if metric in HIGHER_IS_BETTER else "lower is better"
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


def _not_exercised(d: Debrief, quote: str = "") -> str:
    """The gates declared but not exercised, and what that means, in one line."""
    them = "it" if len(d.not_exercised) == 1 else "them"
    return (
        f"{', '.join(d.not_exercised)} (declared in the spec; nothing ran {them} during the "
        f"sprint, so {'it is' if them == 'it' else 'they are'} reported {quote}warn{quote}, "
        f"never {quote}pass{quote})"
    )


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


# --- shared wording -----------------------------------------------------------------------


def _fact(d: Debrief, key: str) -> dict[str, Any] | None:
    value = d.facts.get(key)
    return value if isinstance(value, dict) and value else None


def _model_line(model: dict[str, Any], leaking: Sequence[str] = ()) -> str:
    """The model against the baseline; measured with a leaking input, the score is said to
    prove nothing (the handoff audit blocked it)."""
    beats = model.get("beats_baseline")
    verdict = _judged(beats, "beats the baseline", "does not beat the baseline", "")
    return (
        f"model v{_text(model.get('version'))} ({_text(model.get('algorithm'))}): "
        f"{_text(model.get('metric'))} {_number_text(_number(model.get('model')))} against the "
        f"baseline's {_number_text(_number(model.get('baseline')))}"
        + (f": it {verdict}" if verdict else "")
        + (
            f" (the baseline: {model['baseline_description']})"
            if model.get("baseline_description")
            else ""
        )
        + (
            f". Measured with a leaking input ({', '.join(leaking)}), which the handoff audit "
            "blocked: the true lift is unknown until the leak is removed and the model retrained"
            if leaking
            else ""
        )
    )


def _load_line(load: dict[str, Any]) -> str:
    """The load test as its clients saw it (the gate), then the service's own figure."""
    budget = _number(load.get("budget_ms"))
    client = _number(load.get("client_p99_ms"))
    within = load.get("within_budget")
    if not isinstance(within, bool) and client is not None and budget is not None:
        within = client <= budget
    verdict = _judged(within, ": within budget", ": over budget", "")
    return (
        f"{_number_text(load.get('requests'))} requests, {_number_text(load.get('errors'))} "
        f"errors, {_number_text(load.get('rps'))} req/s; clients saw p50 "
        f"{_number_text(load.get('client_p50_ms'))} ms, p99 {_number_text(client)} ms against "
        f"a {_number_text(budget)} ms budget{verdict}; the service's own latency_ms: p50 "
        f"{_number_text(load.get('p50_ms'))} ms, p99 {_number_text(load.get('p99_ms'))} ms"
    )


def _log_line(logged: dict[str, Any] | None) -> str:
    """What the durable prediction log held after the load test."""
    if not logged:
        return "prediction log: not counted"
    refused = _number(logged.get("refused_unlogged")) or 0
    line = (
        f"prediction log: {_number_text(logged.get('records_written'))} records written to "
        f"{_text(logged.get('folder'))} for {_number_text(logged.get('answered'))} answered "
        f"requests: {_text(logged.get('status'))}"
    )
    if refused:
        line += f"; {_number_text(refused)} requests refused because the log could not be written"
    return line


def _gate_rows(d: Debrief) -> list[list[Any]]:
    """One row per gate judged on what a part of the platform observed (monitoring, rollout)."""
    rows = []
    for key, name in _GATES:
        gate = _fact(d, key)
        if gate is None:
            continue
        declared, observed = gate.get("declared"), gate.get("observed")
        rows.append(
            [
                name,
                _text(gate.get("status")),
                json.dumps(declared, sort_keys=True) if declared else "not declared",
                _text(observed.get("evidence")) if isinstance(observed, dict) else "nothing ran",
                gate.get("evidence"),
            ]
        )
    return rows


def _drill_line(drill: dict[str, Any]) -> str:
    within = drill.get("within_budget")
    verdict = _judged(within, "within budget", "over budget", "budget not judged")
    return (
        f"{_number_text(drill.get('requests'))} requests with a dependency down: "
        f"{_number_text(drill.get('degraded'))} answered by the fallback, "
        f"{_number_text(drill.get('errors'))} errors; clients saw p99 "
        f"{_number_text(drill.get('client_p99_ms'))} ms against a "
        f"{_number_text(drill.get('budget_ms'))} ms budget: {verdict}; the service's own p99 "
        f"{_number_text(drill.get('p99_ms'))} ms"
    )


def _check_rows(phases: Sequence[Phase]) -> list[list[Any]]:
    return [
        [p.name, c.name, c.status, c.detail, _duration(c.duration_s)]
        for p in phases
        for c in p.checks
    ]


def _blocker_rows(d: Debrief) -> list[list[Any]]:
    return [
        [
            b.phase,
            b.category + (", structural" if b.structural else ""),
            _yes(b.critical_path),
            b.title,
            b.evidence,
            b.fix,
            b.who or "—",
            f"{b.estimate} ({b.basis})" if b.basis else b.estimate,
        ]
        for b in d.blockers
    ]


def _approval_rows(approvals: dict[str, Any]) -> list[list[Any]]:
    """One row per role: signed ``yes`` only by a sign-off for this spec (an entry whose
    ``status`` is absent or ``present``); one for an earlier spec says so."""
    present = {_text(p.get("role")): p for p in approvals.get("present") or []}
    roles = [_text(r) for r in approvals.get("required") or []]
    roles += [r for r in present if r not in roles]
    rows = []
    for role in roles:
        signed = present.get(role)
        if signed is None:
            rows.append([role, "no", "", "", "missing"])
        else:
            status = signed.get("status") or "present"
            word = "yes" if status == "present" else f"no: {status.replace('_', ' ')}"
            rows.append([role, word, signed.get("by"), signed.get("at"), signed.get("note")])
    return rows


def _answer_rows(assessment: dict[str, Any], source: str) -> list[list[Any]]:
    """The answers of one kind (``observed``, ``declared``, ``unanswered``), in order."""
    return [
        [
            a.get("area"),
            a.get("text"),
            _judged(a.get("yes"), "yes", "no", "unanswered"),
            a.get("by") or "-",
            a.get("evidence"),
        ]
        for a in assessment.get("answers") or []
        if a.get("source") == source
    ]


def _source_counts(answers: list[dict[str, Any]]) -> str:
    counts = {s: sum(a.get("source") == s for a in answers) for s in ("observed", "declared")}
    rest = len(answers) - sum(counts.values())
    return f"{counts['observed']} answer(s) observed by the sprint, {counts['declared']} declared, {rest} unanswered"


def _judged(value: Any, yes: str, no: str, neither: str) -> str:
    """``yes`` for True, ``no`` for False, ``neither`` for anything else (absent, null)."""
    if value is True:
        return yes
    if value is False:
        return no
    return neither


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _number_text(value: Any) -> str:
    """``8155.3`` → ``8,155``; ``0.81234`` → ``0.8123``; anything not a number → itself or —."""
    number = _number(value)
    if number is None:
        return _text(value)
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.4g}"


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _yes(value)
    return str(value)


def _duration(seconds: float) -> str:
    """``0.0042`` → ``4.2 ms``; ``2.5`` → ``2.5 s``; ``75`` → ``1 min 15 s``; ``3900`` →
    ``1 h 5 min``."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


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
