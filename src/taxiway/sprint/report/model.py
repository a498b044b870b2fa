"""One model of the report: the rows, lines and numbers both renderers draw from the debrief.

Markdown and HTML say the same facts in the same words: each table's headers and rows, and
each fact's sentence, are built here once; the renderers only lay them out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from taxiway.sprint.debrief import Debrief
from taxiway.sprint.outcome import Phase

_NOT_MEASURED = "not measured: the sprint did not get this far"
_CHECK_HEADERS = ["phase", "check", "status", "detail", "duration"]
_BLOCKER_HEADERS = [
    "phase", "category", "critical path", "blocker", "evidence", "fix", "who acts", "estimate"
]  # fmt: skip
_APPROVAL_HEADERS = ["role", "signed", "by", "at", "note"]
_ANSWER_HEADERS = ["area", "question", "answer", "by", "evidence"]
_GATE_HEADERS = ["gate", "status", "declared", "observed", "evidence"]
_IMPORTANCE_HEADERS = [
    "input",
    "permutation share (audit)",
    "mean absolute contribution (explanations)",
]
_GATES = (("monitoring", "monitoring"), ("rollout", "gradual rollout"))
_FRESHNESS_HEADERS = [
    "source", "feature", "probes", "served", "p50 ms", "p99 ms", "max ms", "polled every ms",
    "consumer",
]  # fmt: skip


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
                f"{gate.get('evidence')}: {gate['why']}"
                if gate.get("why")
                else gate.get("evidence"),
            ]
        )
    return rows


def _freshness_line(found: dict[str, Any]) -> str:
    """The stream freshness finding's sentence, as the sprint wrote it (the terminal showed the
    same), or rebuilt from its figures in an older report."""
    line = found.get("line")
    if isinstance(line, str) and line:
        return line
    if not found.get("measured"):
        return f"stream freshness not measured: {_text(found.get('reason'))}"
    return f"stream freshness p99 {_number_text(found.get('p99_ms'))} ms"


def _freshness_rows(found: dict[str, Any]) -> list[list[Any]]:
    """The measured finding's figures as one row (none when not measured)."""
    if not found.get("measured"):
        return []
    return [
        [
            found.get("source"),
            found.get("feature"),
            _number_text(found.get("probes")),
            _number_text(found.get("seen")),
            _number_text(found.get("p50_ms")),
            _number_text(found.get("p99_ms")),
            _number_text(found.get("max_ms")),
            _number_text(found.get("poll_ms")),
            found.get("consumer"),
        ]
    ]


def _importance_rows(model: dict[str, Any] | None) -> list[list[Any]]:
    """Per input, the audit's permutation share beside the mean |contribution| to the raw
    score on the validation rows (``—`` where the model has none), largest contribution first."""
    rows = []
    for name, pair in ((model or {}).get("importance") or {}).items():
        share, contribution = pair.get("permutation"), pair.get("contribution")
        rows.append(
            [
                name,
                "—" if share is None else f"{share:.1%}",
                "—" if contribution is None else f"{contribution:.4g}",
            ]
        )
    return rows


def _drill_line(drill: dict[str, Any]) -> str:
    if drill.get("not_run"):
        return f"not run: {_text(drill['not_run'])}"
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


def _not_exercised(d: Debrief, quote: str = "") -> str:
    """The gates declared but not exercised, and what that means, in one line."""
    them = "it" if len(d.not_exercised) == 1 else "them"
    failed = [k for k in d.not_exercised if (_fact(d, k) or {}).get("status") == "fail"]
    blocked = (
        f" ({', '.join(failed)}: {quote}fail{quote}, a blocker: it cannot run yet)"
        if failed
        else ""
    )
    return (
        f"{', '.join(d.not_exercised)} (declared in the spec; nothing ran {them} during the "
        f"sprint, so {'it is' if them == 'it' else 'they are'} reported {quote}warn{quote}"
        f"{blocked}, never {quote}pass{quote})"
    )


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


_RECOMMEND_HEADERS = ["metric", "model", "popularity", "ceiling"]
_RECOMMEND_AUDIT_HEADERS = ["audit check", "status", "measured"]
_RECOMMEND_AUDIT = ("leakage", "filters", "coverage", "latency")
_METRIC_NAMES = {
    "coverage": "catalog coverage",
    "avg_popularity": "average popularity of what is shown",
    "gini": "Gini of what is shown",
}


def _recommend_rows(recommend: dict[str, Any]) -> list[list[Any]]:
    """The recommender against popularity on each metric measured at the cutoff (the declared
    one first, marked), with the ceiling from the simulator's ``truth.json`` where it has
    that metric."""
    model = recommend.get("model") or {}
    popularity = recommend.get("popularity") or {}
    truth = recommend.get("truth") or {}
    ceiling = truth.get(truth.get("applies") or "ceiling") or {}
    declared = recommend.get("metric")
    names = [declared] + [n for n in model if n not in (declared, "users")]
    return [
        [
            f"{name} (declared)" if name == declared else _METRIC_NAMES.get(name, name),
            _number_text(model.get(name)),
            _number_text(popularity.get(name)),
            _number_text(ceiling.get(name)) if name in ceiling else "—",
        ]
        for name in names
        if name is not None
    ]


def _recommend_lines(d: Debrief) -> list[str]:
    """The recommender's facts in sentences: the split and its cold users and items, the
    ceiling's source, what the two smoke answers were, and the served latency."""
    recommend = _fact(d, "recommend") or {}
    split = recommend.get("split") or {}
    lines = [
        f"time split at {_text(split.get('cut'))}: {_number_text(split.get('train_rows'))} "
        f"training and {_number_text(split.get('valid_rows'))} test interactions; "
        f"{_number_text(recommend.get('evaluated_users'))} users judged; cold (after the "
        f"cutoff only, not judged): {_number_text(recommend.get('cold_users'))} users, "
        f"{_number_text(recommend.get('cold_items'))} items",
    ]
    seconds = recommend.get("training_seconds") or {}
    if seconds:
        fitted = ", ".join(f"{k} {_number_text(v)} s" for k, v in seconds.items())
        lines.append(f"generators fitted: {fitted}")
    truth = recommend.get("truth")
    if isinstance(truth, dict):
        applies = _text(truth.get("applies"))
        lines.append(
            f"ceiling: {applies} from {_text(truth.get('file'))} (the simulator's true "
            f"preferences on its own split at {_text(truth.get('cutoff'))}, "
            f"{_number_text(truth.get('users_evaluated'))} users): the best a model can expect"
        )
    else:
        lines.append("ceiling: unknown (no truth.json beside the interactions: real data has none)")
    smoke = (recommend.get("served") or {}).get("smoke") or {}
    for kind, who in (("known", "a known user"), ("unknown", "an unknown user")):
        answer = smoke.get(kind)
        if answer:
            lines.append(
                f"served to {who}: {_number_text(answer.get('items'))} items by "
                f"{_text(answer.get('path'))}, degraded {_text(answer.get('degraded'))}, "
                f"first {', '.join(answer.get('top') or []) or '—'}"
            )
    load = _fact(d, "load")
    if load and load.get("path") == "/v1/recommend":
        lines.append(f"served latency on /v1/recommend: {_load_line(load)}")
    return lines


def _recommend_audit_rows(audit: dict[str, Any]) -> list[list[Any]]:
    """The recommender audit's four checks: status and what each measured, in one line."""
    checks = audit.get("checks") or {}
    measured = audit.get("measured") or {}
    return [
        [name, _text(checks.get(name)), _audit_figures(name, measured.get(name) or {})]
        for name in _RECOMMEND_AUDIT
    ]


def _audit_figures(name: str, m: dict[str, Any]) -> str:
    """One check's measured figures as a sentence (``—`` when it measured nothing)."""
    if not m:
        return "—"
    if name == "leakage":
        return (
            f"training held {_number_text(m.get('stored_training_interactions'))} interactions "
            f"before the cutoff {_text(m.get('cutoff'))}; re-read from the source: "
            f"{_number_text(m.get('reread_before_cutoff'))} before, "
            f"{_number_text(m.get('reread_at_or_after_cutoff'))} at or after; histories end "
            f"{_text(m.get('histories_newest'))}"
        )
    if name == "filters":
        return (
            f"{_number_text(m.get('users'))} users; {', '.join(m.get('filters') or [])} "
            f"recomputed at evaluation and on {', '.join(m.get('service_paths') or [])}: "
            f"{_number_text(m.get('leaks'))} leaks"
        )
    if name == "coverage":
        return (
            f"{_number_text(m.get('cold_users'))} cold users, {_number_text(m.get('cold_items'))} "
            f"cold items ({_number_text(m.get('cold_items_shown'))} shown); unknown users "
            f"answered by {', '.join(m.get('unknown_user_stages') or []) or '—'}"
        )
    if name == "latency":
        known, cold = m.get("known") or {}, m.get("cold") or {}
        return (
            f"known users p50 {_number_text(known.get('p50_ms'))} ms, p99 "
            f"{_number_text(known.get('p99_ms'))} ms; cold users p99 "
            f"{_number_text(cold.get('p99_ms'))} ms; budget {_number_text(m.get('budget_ms'))} "
            f"ms; costliest stage: {_text(m.get('costliest_stage'))}"
        )
    return json.dumps(m, default=str)[:200]


def _card_lines(card: dict[str, Any]) -> list[str]:
    """The model card's files, then each group where the model is worse than the baseline."""
    if card.get("error"):
        return [f"not written: {_text(card['error'])}"]
    files = card.get("files") or {}
    findings = card.get("findings") or []
    lines = [
        f"written to {_text(files.get('md'))} and {_text(files.get('html'))} (`taxiway models "
        "card V` rewrites it)",
        f"{len(findings)} group(s) where the model is worse than the baseline"
        + (":" if findings else ""),
    ]
    return lines + [f"{f.get('title')}: {f.get('evidence')}; fix: {f.get('fix')}" for f in findings]


def _card_tables(card: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """The card's tables of groups (time slices, each segment): caption, headers, rows."""
    return [
        (_text(t.get("caption")), list(t.get("headers") or []), list(t.get("rows") or []))
        for t in card.get("tables") or []
    ]
