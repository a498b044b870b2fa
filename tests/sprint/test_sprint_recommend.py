"""`taxiway sprint` on a recommend: spec: examples/shop-recs simulated small, the spec and its
contracts as shipped, served for real (`taxiway serve` in a subprocess) and loaded on
/v1/recommend, fault-drilled with its model down and slow; what is not built for recommenders
yet is reported so, never passed; a recommender that cannot beat popularity is blocked with the
fix."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLES, load_script

from taxiway.spec.project import Project
from taxiway.sprint.debrief import Debrief
from taxiway.sprint.runner import SprintOptions, SprintResult, run_sprint

pytestmark = pytest.mark.slow

SHOP = EXAMPLES / "shop-recs"
END = datetime(2025, 12, 31, tzinfo=UTC)  # the simulated data's last day


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/shop-recs at a small size: its data, spec and contracts in one folder."""
    folder = tmp_path_factory.mktemp("shop-recs")
    simulate = load_script("shop_recs_sprint_sim", SHOP / "simulate.py")
    simulate.main(["--out", str(folder / "data"), "--users", "400", "--items", "200",
                   "--interactions", "15000"])  # fmt: skip
    # the fault drills judge the fallbacks' hand-over on a 2-core machine that other test runs
    # and benches share: there, even the load test without a fault misses 50 ms now and then
    # (its p99 is the slowest of ~80 answers), so the budget is 200 ms here (the shipped spec's
    # 50 ms is what `taxiway sprint` on examples/shop-recs judges)
    text = (SHOP / "taxiway.yaml").read_text()
    assert "latency_budget_ms: 50\n" in text
    (folder / "taxiway.yaml").write_text(
        text.replace("latency_budget_ms: 50\n", "latency_budget_ms: 200\n")
    )
    shutil.copytree(SHOP / "contracts", folder / "contracts")
    return folder


def _sprint(spec: Path, tmp_path: Path, *, load_seconds: float = 1.5) -> SprintResult:
    project = Project.load(spec, tmp_path / "state")
    options = SprintOptions(
        report_dir=tmp_path / "report",
        as_of=END,
        load_seconds=load_seconds,
        concurrency=2,
        audit_sample=30,
        drill_requests=80,
    )
    return run_sprint(project, options)


def _checks(debrief: Debrief, phase: str) -> dict[str, Any]:
    found = next(p for p in debrief.phases if p.name == phase)
    return {c.name: c for c in found.checks}


def _cells(markdown: str, first: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is ``first``."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in the report")


def test_the_shop_recs_sprint_serves_recommendations_and_reports_them(
    shop: Path, tmp_path: Path
) -> None:
    result = _sprint(shop / "taxiway.yaml", tmp_path)
    debrief = result.debrief

    developed = _checks(debrief, "model_development")
    assert "model beats popularity" in developed, {n: c.detail for n, c in developed.items()}
    assert developed["model beats popularity"].status == "pass"
    for name in ("leakage", "filters", "coverage", "latency"):
        assert developed[f"audit {name}"].status == "pass", developed[f"audit {name}"].detail
    assert "audit availability" not in developed
    assert "audit skew" not in developed

    integrated = _checks(debrief, "integration")
    for label in ("a known user", "an unknown user", "a bad request"):
        check = integrated[f"smoke POST /v1/recommend ({label})"]
        assert check.status == "pass", check.detail
    assert "degraded true" in integrated["smoke POST /v1/recommend (an unknown user)"].detail
    load = debrief.facts["load"]
    assert load["path"] == "/v1/recommend"
    assert load["answered"] > 0
    assert load["errors"] == 0
    assert integrated["load test within the latency budget"].status in ("pass", "fail")
    logged = integrated["prediction log holds the lists shown"]
    assert logged.status == "pass", logged.detail
    assert debrief.facts["prediction_log"]["with_full_list"] >= load["answered"]
    # the monitor read the load test's answers alone (it runs before the drills add theirs)
    watched = integrated["monitor and drift drill"]
    assert watched.status == "pass", watched.detail
    assert watched.data["requests"] >= load["answered"]
    # the fault drills: the recommender's model down, then slow; every answer from a fallback,
    # degraded, within the budget, with no filtered item (judged from the re-read data)
    for mode in ("down", "slow"):
        drill = integrated[f"fault drill: recommender model {mode}"]
        assert drill.status == "pass", drill.detail
        facts = debrief.facts["drills"][mode]
        assert facts["fault"] == f"recommend_model={mode}"
        assert facts["answered"] == facts["degraded"] == facts["requests"] > 0
        assert facts["within_budget"], drill.detail
        assert facts["errors"] == 0
        lists = facts["lists"]
        assert lists["records"] >= facts["answered"]
        assert lists["leaks"] == 0
        assert "model" not in lists["paths"]
        assert set(lists["paths"]) <= {
            "fallback:itemknn",
            "fallback:segment_popularity",
            "fallback:popularity",
        }
    assert debrief.facts["drill"]["mode"] == "down"
    assert debrief.assessment is not None
    answers = {a["id"]: a for a in debrief.assessment["answers"]}
    assert answers["graceful_fallback"]["source"] == "observed"
    assert answers["graceful_fallback"]["yes"] is True

    # report.json and report.md say the same figures
    document = json.loads(result.report["json"].read_text())
    markdown = result.report["md"].read_text()
    recommend = document["facts"]["recommend"]
    row = _cells(markdown, f"{recommend['metric']} (declared)")
    assert float(row[1]) == pytest.approx(recommend["model"][recommend["metric"]], rel=1e-3)
    assert float(row[2]) == pytest.approx(recommend["popularity"][recommend["metric"]], rel=1e-3)
    ceiling = recommend["truth"][recommend["truth"]["applies"]][recommend["metric"]]
    assert float(row[3]) == pytest.approx(ceiling, rel=1e-3)
    audit = document["facts"]["audit"]
    for name in ("leakage", "filters", "coverage", "latency"):
        assert _cells(markdown, name)[1] == audit["checks"][name] == "passed"
    p99 = audit["measured"]["latency"]["known"]["p99_ms"]
    assert "known users p50 " in _cells(markdown, "latency")[2]
    assert f"p99 {p99:.4g} ms" in _cells(markdown, "latency")[2]
    assert re.search(r'id="recommend-audit-table"', result.report["html"].read_text())
    assert f"users judged; cold (after the cutoff only, not judged): {recommend['cold_users']}" in (
        markdown
    )


def test_a_recommender_that_cannot_beat_popularity_is_blocked_with_the_fix(
    shop: Path, tmp_path: Path
) -> None:
    text = (shop / "taxiway.yaml").read_text()
    start = text.index("  candidates:")
    end = text.index("  filters:")
    spec = tmp_path / "taxiway.yaml"
    # the primary model is popularity itself: it cannot score above popularity
    spec.write_text(
        text[:start] + "  candidates:\n    - {kind: popularity, k: 200, window: 30d}\n" + text[end:]
    )
    for folder in ("data", "contracts"):
        (tmp_path / folder).symlink_to(shop / folder)
    result = _sprint(spec, tmp_path, load_seconds=0.5)
    debrief = result.debrief
    judged = _checks(debrief, "model_development")["model beats popularity"]
    assert judged.status == "fail"
    assert judged.blocker is not None
    assert judged.blocker.title == "the recommender does not beat popularity"
    assert judged.blocker.critical_path
    assert "ship popularity itself" in judged.blocker.fix
    assert "recommend.candidates" in judged.blocker.fix
    assert debrief.facts["model"]["beats_baseline"] is False
    assert not debrief.deployed
    answer = next(q for q in debrief.questions() if q["id"] == "do_ai")["answer"]
    assert answer.startswith("No, not with this model")


def test_a_ranking_metric_gain_is_a_positive_lift() -> None:
    debrief = Debrief("x", "t.yaml", "", "", [], deployed=False,
                      facts={"model": {"metric": "recall@10", "model": 0.12, "baseline": 0.06}})  # fmt: skip
    lift = debrief.model_lift()
    assert lift is not None
    assert lift[0] == pytest.approx(0.06)
    assert lift[1] == pytest.approx(1.0)
