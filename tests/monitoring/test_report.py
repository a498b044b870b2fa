"""Every view of the monitor's report (terminal, Markdown, HTML, JSON) says the same statuses
with the same numbers, from one model of the findings; the HTML stands alone and escapes."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.monitoring.monitor_world import World, reference, shift_spend

from taxiway.monitoring.monitor import run_monitor
from taxiway.monitoring.report import (
    MonitorReport,
    render_html,
    render_markdown,
    summary_lines,
    write_report,
)
from taxiway.monitoring.report.model import DriftFinding
from taxiway.monitoring.report.rows import number_text


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> MonitorReport:
    """Three healthy windows, then three with the spend shifted (spend and the output drift),
    outcomes for every answer, the last hour slow (the latency SLO burns)."""
    world = World(tmp_path_factory.mktemp("report"), reference())
    for hour in range(3):
        world.write_window(hour, outcomes=True)
    for hour in (3, 4):
        world.write_window(hour, shift=shift_spend, outcomes=True)
    world.write_window(5, shift=shift_spend, outcomes=True, latency_ms=200.0)
    return run_monitor(world.inputs())


def test_the_report_has_something_to_agree_on(report: MonitorReport) -> None:
    statuses = {f.name: f.status for f in report.features}
    assert statuses["spend"] == "drift"
    assert statuses["age"] == "ok"
    assert {a.kind for a in report.alerts} >= {"drift", "slo", "latency"}
    assert not report.healthy


def test_terminal_markdown_html_and_json_agree(report: MonitorReport) -> None:
    document = report.to_json()
    terminal = "\n".join(summary_lines(report))
    markdown = render_markdown(report)
    page = render_html(report)
    assert json.loads(json.dumps(document)) == document  # plain JSON
    findings = [*document["features"], document["output"]]
    for f in findings:
        value, threshold = number_text(f["value"]), number_text(f["threshold"])
        name, statistic, status = f["name"], f["statistic"], f["status"]
        assert f"{status:<5} {name}: {statistic} {value} (threshold {threshold})" in terminal
        assert f"| {name} | {statistic} | {value} | {threshold} | {status} |" in markdown
        cells = "".join(
            f"<td>{html.escape(c)}</td>" for c in (name, statistic, value, threshold, status)
        )
        assert f'<tr class="row-{status}">{cells}' in page
    for alert in document["alerts"]:
        assert f"[{alert['severity']}] {alert['title']}: {alert['detail']}" in terminal
        assert f"| {alert['severity']} | {alert['title']} |" in markdown
        assert (
            f"<td>{html.escape(alert['severity'])}</td><td>{html.escape(alert['title'])}</td>"
            in page
        )
    headline = terminal.splitlines()[0]
    assert f"**{headline}**" in markdown
    assert f'id="headline">{html.escape(headline)}</p>' in page
    assert headline.split(": ")[1].startswith("ALERT") == (not document["healthy"])
    for slo in document["slo"]:
        burn = number_text(slo["burn"]["1h"])
        assert f"SLO {slo['name']} (" in terminal
        assert f"1h {burn}" in terminal
        assert f"| {slo['name']} |" in markdown
        assert f"| {slo['status']} |" in markdown
    realised = number_text(document["quality"]["realised"]["roc_auc"])
    for view in (terminal, markdown, page):
        assert "realised roc_auc over" in view
        assert realised in view


def test_the_page_draws_every_chart_inline(report: MonitorReport) -> None:
    page = render_html(report)
    for chart in (
        "chart-drift-grid",
        "chart-dist-spend",
        "chart-drift-spend",
        "chart-dist-output",
        "chart-latency",
        "chart-burn",
        "chart-quality",
    ):
        assert f'<svg id="{chart}"' in page, chart
    assert "chart-dist-age" not in page  # only features that are not ok get a section
    assert "<script" not in page
    assert re.findall(r"(?:src|href)=", page) == []
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    # the budget is drawn on the latency chart, the page floor on the quality chart
    assert "budget 50 ms" in page
    assert "page below" in page


def test_every_string_from_the_data_is_escaped(report: MonitorReport) -> None:
    evil = "<script>alert(1)</script>"
    spend = next(f for f in report.features if f.name == "spend")
    hostile = dataclasses.replace(spend, name=evil, source=f"view {evil}", why=evil)
    changed = dataclasses.replace(
        report,
        features=[hostile if f is spend else f for f in report.features],
        notes=[evil],
    )
    page = render_html(changed)
    assert "<script" not in page
    assert html.escape(evil) in page


def test_write_report_writes_the_three_views(report: MonitorReport, tmp_path: Path) -> None:
    paths = write_report(report, tmp_path / "out")
    assert [p.name for p in paths] == ["monitor.json", "monitor.md", "monitor.html"]
    assert json.loads(paths[0].read_text()) == report.to_json()
    assert paths[1].read_text() == render_markdown(report)
    assert paths[2].read_text() == render_html(report)


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)
_VALUES = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False), st.integers(0, 10**7))


@st.composite
def _finding(draw: st.DrawFn, report: MonitorReport) -> DriftFinding:
    base = report.features[0]
    return dataclasses.replace(
        base,
        name=draw(_TEXT),
        statistic=draw(st.sampled_from(["psi", "chi2", "ks", "wasserstein"])),
        value=draw(_VALUES),
        threshold=draw(_VALUES),
        status=draw(st.sampled_from(["ok", "warn", "drift"])),
        why=draw(_TEXT),
    )


@settings(derandomize=True, deadline=None, max_examples=40)
@given(data=st.data())
def test_every_view_says_the_same_about_any_finding(
    report: MonitorReport, data: st.DataObject
) -> None:
    """Whatever the names (markup, pipes, quotes) and numbers, each finding's row reads the
    same in the terminal, Markdown, HTML and JSON."""
    features = data.draw(st.lists(_finding(report), min_size=1, max_size=4))
    changed = dataclasses.replace(report, features=features)
    terminal = "\n".join(summary_lines(changed))
    markdown = render_markdown(changed)
    page = render_html(changed)
    document = changed.to_json()
    for f, row in zip(document["features"], changed.features, strict=True):
        value, threshold = number_text(f["value"]), number_text(f["threshold"])
        assert (f["value"], f["status"]) == (
            row.value if row.value is None else float(row.value),
            row.status,
        )
        line = f"{f['status']:<5} {f['name']}: {f['statistic']} {value} (threshold {threshold})"
        assert line in terminal
        cells = [f["name"], f["statistic"], value, threshold, f["status"]]
        md_cells = [c.replace("|", "\\|").replace("\n", " ") for c in cells]
        assert "| " + " | ".join(md_cells) + " |" in markdown
        html_cells = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        assert f'<tr class="row-{f["status"]}">{html_cells}' in page
    assert "<script" not in page
