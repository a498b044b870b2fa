"""report.md: the debrief as Markdown, readable as plain text in a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taxiway.lineage import LineageGraph
from taxiway.sprint.assess import SOURCE_TITLES, SOURCES
from taxiway.sprint.debrief import PATHS, Debrief
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
    _recommend_audit_rows,
    _recommend_lines,
    _recommend_rows,
    _source_counts,
    _text,
    _yes,
)


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
        ("Handoff audit", [*(_md_audit(audit) if audit else [_NOT_MEASURED]),
                           *_md_importance(model)]),
        ("Lineage", _md_lineage(_fact(d, "lineage"))),
        ("Model card", _md_card(card) if (card := _fact(d, "card")) else [_NOT_MEASURED]),
        *([("Recommendations", _md_recommend(d))] if _fact(d, "recommend") else []),
        ("Load test", _md_load(load, _fact(d, "prediction_log")) if load else [_NOT_MEASURED]),
        ("Fault drill", [_drill_line(drill)] if drill else [_NOT_MEASURED]),
        *([("Stream freshness", _md_freshness(found))] if (found := _fact(d, "freshness"))
          else []),
        ("Approvals", _md_approvals(approvals) if approvals else [_NOT_MEASURED]),
        ("Monitoring and rollout", _md_table(_GATE_HEADERS, _gate_rows(d)) if _gate_rows(d)
         else [_NOT_MEASURED]),
        *([("Model history", [f"- {_text(line)}" for line in history.get("lines", [])])]
          if (history := _fact(d, "history")) else []),
    ]  # fmt: skip
    return sections


def _md_lineage(lineage: dict[str, Any] | None) -> list[str]:
    """The registered version's lineage graph, from contracts to the service, as text."""
    if not lineage:
        return [_NOT_MEASURED]
    return ["```text", *LineageGraph.from_dict(lineage).lines(), "```"]


def _md_recommend(d: Debrief) -> list[str]:
    """The recommender's metrics against popularity and the ceiling, its facts, its audit."""
    recommend, audit = _fact(d, "recommend") or {}, _fact(d, "audit")
    lines = [*_md_table(_RECOMMEND_HEADERS, _recommend_rows(recommend)), ""]
    lines += [f"- {line}" for line in _recommend_lines(d)]
    if audit:
        lines += ["", *_md_table(_RECOMMEND_AUDIT_HEADERS, _recommend_audit_rows(audit))]
    return lines


def _md_freshness(found: dict[str, Any]) -> list[str]:
    rows = _freshness_rows(found)
    table = [*_md_table(_FRESHNESS_HEADERS, rows), ""] if rows else []
    return [*table, f"- {_freshness_line(found)}"]


def _md_card(card: dict[str, Any]) -> list[str]:
    lines = [f"- {line}" for line in _card_lines(card)]
    for caption, headers, rows in _card_tables(card):
        lines += ["", caption, "", *_md_table(headers, rows)]
    return lines


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


def _md_importance(model: dict[str, Any] | None) -> list[str]:
    rows = _importance_rows(model)
    return ["", *_md_table(_IMPORTANCE_HEADERS, rows)] if rows else []


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
