"""The report: three files, one self-contained page whose every user string is escaped."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.sprint.test_debrief import debriefs

from taxiway.lineage import build_graph
from taxiway.sprint.debrief import Debrief
from taxiway.sprint.outcome import Blocker, Check, Phase
from taxiway.sprint.report import STATUS_COLOURS, render_html, render_markdown, write_report

SCRIPT = "<script>document.body.setAttribute('data-pwned', 'yes')</script>"
OUR_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "p",
    "dl",
    "dt",
    "dd",
    "code",
    "section",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "ul",
    "li",
    "svg",
    "rect",
    "text",
    "line",
    "g",
}


def full_debrief(text: str = "") -> Debrief:
    """A sprint that reached every phase and measured everything; ``text`` is appended to every
    string that comes from the user."""
    t = text

    def b(phase: Any, category: Any, critical: bool, title: str, estimate: Any) -> Blocker:
        evidence = f"evidence of {title}{t}"
        return Blocker(phase, category, critical, title + t, evidence, f"fix {title}{t}", estimate)

    grant = b("data_access", "organizational", True, "ml_reader cannot read orders", "weeks")
    grant = Blocker(**{**grant.as_dict(), "evidence": f"permission denied {SCRIPT}{t}"})
    privacy = b("deployment", "organizational", True, "no privacy sign-off", "months")
    slow = b("integration", "technical", False, "p99 over budget | by 11 ms", "days")
    phases = [
        Phase(
            "data_access",
            [
                Check("access.orders" + t, "fail", "denied" + t, 0.4, grant),
                Check("contract.orders", "pass", "ok" + t, 1.2),
            ],
            1.6,
        ),
        Phase("model_development", [Check("train", "pass", "roc_auc 0.78" + t, 40.0)], 40.0),
        Phase("integration", [Check("load", "warn", "p99 61 ms" + t, 30.0, slow)], 30.5),
        Phase("deployment", [Check("approvals", "fail", "privacy missing" + t, 0.1, privacy)], 0.2),
    ]
    facts = {
        "model": {
            "version": 3,
            "algorithm": "lightgbm" + t,
            "metric": "roc_auc",
            "model": 0.78,
            "baseline": 0.65,
            "beats_baseline": True,
            "importance": {
                "orders_30d" + t: {"permutation": 0.62, "contribution": 0.4213},
                "tenure": {"permutation": 0.08, "contribution": None},
            },
        },
        "lineage": build_graph(
            "repurchase" + t,
            3,
            {
                "sources": [
                    {
                        "name": "orders" + t,
                        "kind": "file",
                        "rows": 10,
                        "contract": {"path": "c.yaml", "id": "orders" + t, "version": "1.0"},
                    }
                ],
                "views": [{"name": "spend" + t, "source": "orders" + t, "used": ["spend_30d"]}],
                "training_set": {"path": "training.parquet", "rows": 5},
            },
            stage="production",
            served=3,
        ).as_dict(),
        "audit": {
            "blocked": True,
            "findings": [
                {
                    "check": "leakage" + t,
                    "severity": "blocker",
                    "message": "own AUC 0.99" + t,
                    "fix": "drop refund_7d" + t,
                },
                {"check": "skew", "severity": "warning" + t, "message": "2 rows", "fix": "none"},
            ],
        },
        "card": {
            "files": {"md": "state/card.md" + t, "html": "state/card.html" + t},
            "findings": [
                {
                    "title": "the model is worse than the baseline for region=north" + t,
                    "evidence": "ROC AUC 0.61 against the baseline's 0.70" + t,
                    "fix": "collect more data for region=north or keep the baseline there" + t,
                }
            ],
            "tables": [
                {
                    "caption": "region (column customer_profile__region)" + t,
                    "headers": [
                        "region",
                        "rows",
                        "model",
                        "baseline",
                        "lift",
                        "95% interval",
                        "verdict",
                    ],
                    "rows": [
                        [
                            "north" + t,
                            "400",
                            "0.6100",
                            "0.7000",
                            "-0.0900",
                            "[-0.1200, -0.0600]",
                            "worse",
                        ]
                    ],
                }
            ],
        },
        "load": {
            "requests": 20000,
            "answered": 20000,
            "errors": 0,
            "rps": 8155.3,
            "p50_ms": 1.2,
            "p99_ms": 12.0,
            "client_p50_ms": 2.1,
            "client_p99_ms": 61.0,
            "budget_ms": 50,
            "latency_gate": "client_p99_ms",
            "within_budget": False,
        },
        "prediction_log": {
            "folder": "state/predictions" + t,
            "records_before": 40,
            "records_written": 20000,
            "answered": 20000,
            "refused_unlogged": 0,
            "status": "pass",
        },
        "drill": {
            "requests": 500,
            "degraded": 480,
            "errors": 2,
            "p99_ms": 9.0,
            "client_p99_ms": 31.0,
            "budget_ms": 50,
            "within_budget": True,
        },
        "monitoring": {
            "declared": {"drift": "psi" + t, "alert_threshold": 0.2},
            "observed": None,
            "status": "warn",
            "evidence": "declared, not exercised",
        },
        "rollout": {
            "declared": None,
            "observed": None,
            "status": "fail",
            "evidence": "not declared",
        },
        "approvals": {
            "required": ["security", "privacy", "business"],
            "present": [
                {"role": "security", "by": "ana" + t, "at": "2025-06-02", "note": "fine" + t}
            ],
        },
    }
    assessment = {
        "level": 2,
        "name": "Experimenting" + t,
        "yes_count": 7,
        "meaning": "pilots, none in production" + t,
        "success_rate": "20%" + t,
        "time_per_model": "6-12 months" + t,
        "level_notes": ["name an owner" + t],
        "answers": [
            {
                "id": "data_access",
                "area": "data" + t,
                "text": "Can the team read it?" + t,
                "yes": False,
                "source": "observed",
                "by": "sprint",
                "evidence": "permission denied" + t,
            },
            {
                "id": "owner",
                "area": "org",
                "text": "Is there an owner?",
                "yes": True,
                "source": "declared",
                "by": "spec" + t,
                "evidence": "owner: growth-team" + t,
            },
            {
                "id": "budget",
                "area": "org",
                "text": "Is there a budget?",
                "yes": None,
                "source": "unanswered",
                "evidence": "",
            },
        ],
    }
    return Debrief(
        "repurchase" + t,
        "taxiway.yaml" + t,
        "2025-06-02T09:00:00Z",
        "2025-06-02T09:04:10Z",
        phases,
        deployed=False,
        served_url="http://127.0.0.1:8000" + t,
        facts=facts,
        assessment=assessment,
    )


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every start tag of ``page``, in order, with its attributes."""
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser.found


def bars(page: str, chart_id: str) -> list[dict[str, str | None]]:
    """The attributes of every bar of one chart."""
    inside, found = False, []
    for tag, attrs in elements(page):
        if tag == "svg":
            inside = attrs.get("id") == chart_id
        elif inside and tag == "rect" and "bar" in (attrs.get("class") or "").split():
            found.append(attrs)
    return found


def width(attrs: dict[str, str | None]) -> float:
    return float(attrs["width"] or 0)


# --- the files ----------------------------------------------------------------------------


def test_write_report_writes_markdown_html_and_json(tmp_path: Path) -> None:
    d = full_debrief()
    paths = write_report(d, tmp_path / "sprint")
    assert paths == {k: tmp_path / "sprint" / f"report.{k}" for k in ("md", "html", "json")}
    assert paths["md"].read_text() == render_markdown(d)
    assert paths["html"].read_text() == render_html(d)
    doc = json.loads(paths["json"].read_text())
    assert doc == json.loads(json.dumps(d.as_dict()))
    assert render_html(Debrief.from_dict(doc)) == render_html(d)


def test_report_json_has_the_keys_the_issue_lists(tmp_path: Path) -> None:
    doc = json.loads(write_report(full_debrief(), tmp_path)["json"].read_text())
    assert doc["path"] == 2
    assert doc["deployed"] is False
    for phase in doc["phases"]:
        assert {"name", "status", "duration_s"} <= phase.keys()
    assert [b["phase"] for b in doc["blockers"]] == ["data_access", "integration", "deployment"]
    for b in doc["blockers"]:
        assert {"phase", "category", "critical_path", "evidence", "fix", "estimate"} <= b.keys()
    assert [q["id"] for q in doc["questions"]] == [
        "unlimited_resources",
        "critical_path",
        "how_long",
        "fix_in_30_days",
        "do_ai",
    ]
    assert {
        "project",
        "started_at",
        "finished_at",
        "served_url",
        "facts",
        "assessment",
        "verdict",
    } <= doc.keys()


# --- escaping and self-containment --------------------------------------------------------


def test_a_script_in_the_evidence_is_shown_as_text() -> None:
    page = render_html(full_debrief())
    assert "permission denied &lt;script&gt;document.body.setAttribute(" in page
    assert "<script" not in page


def test_every_user_string_is_escaped() -> None:
    page = render_html(full_debrief('<x-evil onload="1">'))
    assert "<x-evil" not in page
    assert "&lt;x-evil onload=&quot;1&quot;&gt;" in page
    assert {tag for tag, _ in elements(page)} <= OUR_TAGS


@given(debriefs(text=st.text(alphabet="<>&\"'/= xscript", max_size=16)))
def test_no_user_string_can_open_a_tag(d: Debrief) -> None:
    found = elements(render_html(d))
    assert {tag for tag, _ in found} <= OUR_TAGS
    assert not [name for _, attrs in found for name in attrs if name.startswith("on")]


def test_the_page_fetches_nothing() -> None:
    page = render_html(replace(full_debrief(), deployed=True))
    for pattern in (
        r"<script",
        r"<link",
        r"<img",
        r"<iframe",
        r"\bsrc=",
        r"\bhref=",
        r"url\(",
        r"@import",
        r"@font-face",
    ):
        assert not re.search(pattern, page, re.IGNORECASE), pattern
    urls = set(re.findall(r"https?://[^\s\"'<]+", page))
    assert urls == {
        "http://www.w3.org/2000/svg",
        "http://127.0.0.1:8000",
    }  # the svg namespace; the url as text


# --- the charts ---------------------------------------------------------------------------


def test_the_timeline_has_a_bar_per_phase_sized_by_duration_coloured_by_status() -> None:
    d = full_debrief()
    found = bars(render_html(d), "chart-timeline")
    assert [(a["data-phase"], a["data-status"], a["fill"]) for a in found] == [
        (p.name, p.status, STATUS_COLOURS[p.status]) for p in d.phases
    ]
    model_dev, integration = width(found[1]), width(found[2])
    assert model_dev / integration == pytest.approx(40.0 / 30.5, rel=0.01)
    # each bar starts where the one before it ends
    for before, after in pairwise(found):
        end = float(before["x"] or 0) + width(before)
        assert float(after["x"] or 0) == pytest.approx(end, abs=2.1)


def test_model_load_and_drill_charts_show_their_numbers() -> None:
    page = render_html(full_debrief())
    model, baseline = bars(page, "chart-model")
    assert (model["data-name"], baseline["data-name"]) == ("model", "baseline")
    assert width(model) / width(baseline) == pytest.approx(0.78 / 0.65, rel=0.01)
    # the clients' p99 is the gate and is over; the service's own p99 is drawn beside it
    p50, p99, server = bars(page, "chart-load")
    assert [a["data-name"] for a in (p50, p99, server)] == ["p50", "p99", "server-p99"]
    assert "over" in (p99["class"] or "")
    assert "over" not in (p50["class"] or "")
    assert "over" not in (server["class"] or "")
    assert width(p99) / width(server) == pytest.approx(61.0 / 12.0, rel=0.01)
    assert re.search(r'<svg id="chart-load".*?<line class="budget"', page)
    segments = {a["data-name"]: width(a) for a in bars(page, "chart-drill")}
    assert list(segments) == ["answered by the model", "answered by the fallback", "errors"]
    by_fallback, by_model = segments["answered by the fallback"], segments["answered by the model"]
    assert by_fallback / by_model == pytest.approx(480 / 18)
    drill_p99, drill_server = bars(page, "chart-drill-latency")
    assert "over" not in (drill_p99["class"] or "")
    assert width(drill_p99) / width(drill_server) == pytest.approx(31.0 / 9.0, rel=0.01)


def test_what_the_sprint_did_not_reach_says_not_measured() -> None:
    stopped = Debrief(
        "shop",
        "taxiway.yaml",
        "09:00",
        "09:01",
        [Phase("data_access", [Check("read", "fail", blocker=full_debrief().blockers[0])], 1.0)],
        deployed=False,
    )
    page, text = render_html(stopped), render_markdown(stopped)
    ids = {attrs.get("id") for tag, attrs in elements(page) if tag == "svg"}
    assert ids == {"chart-timeline"}
    assert page.count("not measured: the sprint did not get this far") == 8
    assert text.count("not measured: the sprint did not get this far") == 8
    assert "not assessed" in page
    assert "not assessed" in text


def test_the_lineage_graph_is_drawn_in_the_page_and_written_in_markdown() -> None:
    d = full_debrief()
    page, text = render_html(d), render_markdown(d)
    boxes = [a for tag, a in elements(page) if tag == "rect"]
    assert 'id="lineage-graph"' in page
    assert len(boxes) >= 6  # contract, source, view, training set, model, service
    assert "contract orders v1.0" in page
    assert "served: v3 in production ← model repurchase v3" in text


# --- the tables ---------------------------------------------------------------------------


def table_rows(page: str, table_id: str) -> int:
    match = re.search(rf'<table id="{table_id}">.*?</table>', page, re.DOTALL)
    assert match, table_id
    return match.group(0).count("<tr") - 1  # minus the header row


def test_the_tables_hold_every_blocker_finding_answer_and_question() -> None:
    d = full_debrief()
    page = render_html(d)
    assert table_rows(page, "blockers-table") == 3
    assert table_rows(page, "audit-table") == 2
    for kind in ("observed", "declared", "unanswered"):
        assert table_rows(page, f"readiness-{kind}") == 1, kind
    assert table_rows(page, "gates-table") == 2
    assert table_rows(page, "questions-table") == 5
    assert table_rows(page, "approvals-table") == 3
    assert table_rows(page, "checks-table") == 5
    assert "1 answer(s) observed by the sprint, 1 declared, 1 unanswered" in page
    assert '<tr class="source-declared">' in page


def test_a_sign_off_for_an_earlier_spec_is_not_a_sign_off() -> None:
    d = full_debrief()
    d.facts["approvals"]["present"].append(
        {"role": "privacy", "by": "bo", "at": "2025-05-01", "note": "", "status": "earlier_spec"}
    )
    page = render_html(d)
    assert '<tr class="unsigned"><td>privacy</td><td>no: earlier spec</td><td>bo</td>' in page
    assert '<tr class="signed"><td>security</td><td>yes</td>' in page
    assert "| privacy | no: earlier spec | bo | 2025-05-01 |  |" in render_markdown(d)


def test_markdown_holds_the_same_content_with_table_pipes_escaped() -> None:
    text = render_markdown(full_debrief())
    for heading in (
        "The five questions",
        "Phases",
        "Blockers",
        "Model versus baseline",
        "Handoff audit",
        "Load test",
        "Fault drill",
        "Approvals",
        "Monitoring and rollout",
        "Readiness assessment",
    ):
        assert f"\n## {heading}\n" in text
    rows = [line for line in text.splitlines() if "p99 over budget" in line and "|" in line]
    (row,) = rows
    assert len(re.findall(r"(?<!\\)\|", row)) == 9  # 8 columns; the pipe in the title is escaped
    assert "clients saw p50 2.1 ms, p99 61 ms against a 50 ms budget: over budget" in text
    assert "the service's own latency_ms: p50 1.2 ms, p99 12 ms" in text
    assert "prediction log: 20,000 records written to state/predictions for 20,000" in text
    for kind in ("Observed", "Declared", "Unanswered"):
        assert f"\n### {kind}: " in text
    assert "roc_auc 0.78 against the baseline's 0.65: it beats the baseline" in text
    assert "\n\n\n" not in text


# --- gates that were declared but not exercised -------------------------------------------


def test_a_declared_gate_nothing_ran_is_warn_and_every_form_says_so_alike(tmp_path: Path) -> None:
    """The verdict, the Markdown, the HTML and the JSON are rendered from the same facts."""
    d = replace(full_debrief(), deployed=True, phases=[], served_url=None)
    d.facts["rollout"] = {
        "declared": {"control": "baseline", "steps": [1.0, 100.0]},
        "observed": None,
        "status": "warn",
        "evidence": "declared, not exercised",
    }
    assert d.path == 1  # a warn has no blocker: it does not stop the promotion by itself
    said = (
        "Not exercised by the sprint: monitoring and the gradual rollout were declared, but "
        "nothing ran them."
    )
    assert d.verdict.endswith(said)
    paths = write_report(d, tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["verdict"] == d.verdict
    assert doc["not_exercised"] == ["monitoring", "rollout"]
    for key in ("monitoring", "rollout"):
        assert doc["facts"][key]["status"] == "warn"
        assert doc["facts"][key]["observed"] is None
    text, page = paths["md"].read_text(), paths["html"].read_text()
    assert said in text
    assert "- not exercised: monitoring, rollout" in text
    assert "| monitoring | warn |" in text
    assert "| gradual rollout | warn |" in text
    assert said in page
    assert 'id="not-exercised">not exercised: monitoring, rollout' in page
    assert page.count('<tr class="gate-warn"><td>') == 2
    assert "| pass |" not in text.split("## Monitoring and rollout")[1].split("##")[0]


def test_fix_commands_are_set_in_code_never_shown_with_their_backticks() -> None:
    """Issue 13, defect 10: the page showed `export X=...` with its backticks."""
    fix = "run `taxiway approve --role security` after review"
    grant = Blocker("deployment", "organizational", True, "the security sign-off is missing",
                    "none recorded", fix, "days")  # fmt: skip
    d = Debrief("shop", "taxiway.yaml", "09:00", "09:03",
                [Phase("deployment", [Check("sign-off <security>", "fail", blocker=grant)])],
                deployed=False)  # fmt: skip
    page = render_html(d)
    assert "<code>taxiway approve --role security</code>" in page
    body = page.split("</header>", 1)[1]
    assert "`" not in re.sub(r"<style>.*?</style>", "", body, flags=re.S)
    assert "sign-off &lt;security&gt;" in page  # still escaped
    # an odd backtick stays as it is, escaped text around it
    assert "<code>" not in render_html(replace(d, project="a ` b <i>"))[:400]


def test_the_drill_chart_counts_fallback_answers_as_answers() -> None:
    """Issue 13, defect 10: the chart said "answered 0 · degraded 203" while the text said
    203 answered by the fallback."""
    page = render_html(full_debrief())
    legend = re.search(r'<svg id="chart-drill".*?</svg>', page, re.S)
    assert legend is not None
    assert "answered by the model 18 · answered by the fallback 480 · errors 2" in legend.group()
    assert "480 answered by the fallback" in page  # the text beside it
    assert "degraded 480" not in legend.group()


def test_the_audit_shows_permutation_importance_beside_mean_contribution() -> None:
    d = full_debrief()
    page, markdown = render_html(d), render_markdown(d)
    assert 'id="importance-table"' in page
    for text in (page, markdown):
        assert "mean absolute contribution" in text
        assert "62.0%" in text
        assert "0.4213" in text
    assert "| tenure | 8.0% | — |" in markdown


def test_the_model_card_section_says_the_same_in_markdown_and_html() -> None:
    d = full_debrief()
    page, text = render_html(d), render_markdown(d)
    section = text.split("## Model card", 1)[1].split("\n## ", 1)[0]
    assert "1 group(s) where the model is worse than the baseline:" in section
    assert "the model is worse than the baseline for region=north: ROC AUC 0.61" in section
    assert "| north | 400 | 0.6100 | 0.7000 | -0.0900 | [-0.1200, -0.0600] | worse |" in section
    assert "1 group(s) where the model is worse than the baseline:" in page
    assert table_rows(page, "card-table-0") == 1


def test_the_model_history_section_shows_each_line_escaped_and_only_when_recorded() -> None:
    line = "v2 (candidate): drift on <b>x</b>; roc_auc 0.83 vs production v1 0.79 on the same rows"
    d = replace(full_debrief(), facts={**full_debrief().facts, "history": {"lines": [line]}})
    text, page = render_markdown(d), render_html(d)
    assert "## Model history" in text
    assert f"- {line}" in text
    assert 'id="history-list"' in page
    assert "drift on &lt;b&gt;x&lt;/b&gt;" in page
    assert "Model history" not in render_markdown(full_debrief())
    assert 'id="history-list"' not in render_html(full_debrief())
