"""`taxiway sprint` on a recommend: spec, observed past integration: the recommender's monitor
over the load test's answers and its fallback drill (the alert fires when the model path is
replaced by popularity, not on the healthy window), then the rollout controller started at
the plan's first step with a first check; the debrief's JSON and Markdown say the same.

examples/shop-recs simulated small, its spec with a wider latency budget (a busy test machine
must not block the promotion this test is about) and every sign-off recorded."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.conftest import EXAMPLES, load_script

from taxiway.models.registry import open_registry
from taxiway.spec.project import Project
from taxiway.sprint.approvals import record_approval
from taxiway.sprint.recommend_watch import (
    DRILL_WINDOW,
    DRILL_WINDOWS,
    drilled,
    restamped,
    watch_recommender,
)
from taxiway.sprint.runner import SprintOptions, SprintResult, run_sprint

SHOP = EXAMPLES / "shop-recs"
END = datetime(2025, 12, 31, tzinfo=UTC)  # the simulated data's last day


@pytest.fixture(scope="module")
def sprinted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, SprintResult]:
    """The sprint on a small shop-recs, every sign-off recorded: it deploys by a rollout."""
    folder = tmp_path_factory.mktemp("shop-recs-watch")
    simulate = load_script("shop_recs_watch_sim", SHOP / "simulate.py")
    simulate.main(["--out", str(folder / "data"), "--users", "400", "--items", "200",
                   "--interactions", "15000"])  # fmt: skip
    text = (SHOP / "taxiway.yaml").read_text()
    assert "latency_budget_ms: 50" in text
    (folder / "taxiway.yaml").write_text(
        text.replace("latency_budget_ms: 50", "latency_budget_ms: 1000")
    )
    shutil.copytree(SHOP / "contracts", folder / "contracts")
    project = Project.load(folder / "taxiway.yaml", folder / "state")
    for role in ("security", "privacy", "business"):
        record_approval(project, role, "Test Reviewer")
    options = SprintOptions(report_dir=folder / "report", as_of=END, load_seconds=1.5,
                            concurrency=2, audit_sample=30)  # fmt: skip
    return project, run_sprint(project, options)


def _checks(result: SprintResult, phase: str) -> dict[str, Any]:
    found = next(p for p in result.debrief.phases if p.name == phase)
    return {c.name: c for c in found.checks}


@pytest.mark.slow
def test_the_monitor_gate_passes_on_what_ran_and_the_drill_alerted(
    sprinted: tuple[Project, SprintResult],
) -> None:
    project, result = sprinted
    debrief = result.debrief
    blockers = [b.title for p in debrief.phases for b in p.blockers]
    watched = _checks(result, "integration")["monitor and drift drill"]
    assert watched.status == "pass", (watched.detail, blockers)
    data = watched.data
    assert data["requests"] >= debrief.facts["load"]["answered"] > 0
    assert data["healthy_alerts"] is not None
    assert not [a for a in data["healthy_alerts"] if a.startswith("fallback:")]
    assert f"fallback:{project.spec.name}" in data["drill_alerts"]
    assert "fallback drill" in watched.detail
    assert "alert" in watched.detail
    monitoring = _checks(result, "deployment")["monitoring"]
    assert monitoring.status == "pass"
    assert debrief.facts["monitoring"]["observed"]["ok"] is True
    assert debrief.facts["monitor"]["kind"] == "recommend"
    assert debrief.assessment is not None
    answers = {a["id"]: a for a in debrief.assessment["answers"]}
    assert answers["drift_alerts"]["source"] == "observed"
    assert answers["drift_alerts"]["yes"] is True
    assert "fallback drill" in answers["drift_alerts"]["evidence"]


@pytest.mark.slow
def test_the_rollout_starts_at_one_percent_of_users_with_a_first_check(
    sprinted: tuple[Project, SprintResult],
) -> None:
    project, result = sprinted
    debrief = result.debrief
    blockers = [b.title for p in debrief.phases for b in p.blockers]
    deployment = _checks(result, "deployment")
    started = deployment["start the gradual rollout"]
    assert started.status == "pass", (started.detail, blockers)
    assert "1% of users (customer_id)" in started.detail
    assert "first check:" in started.detail
    assert deployment["gradual rollout"].status == "pass"
    rolling = debrief.facts["rollout_state"]
    assert (rolling["state"], rolling["step"], rolling["share"]) == ("running", 1, 1.0)
    assert rolling["verdict"] is not None  # the first check ran and recorded its verdict
    assert rolling["control"]["kind"] == "baseline"
    assert debrief.deployed
    assert "rolling out to 1% of users" in debrief.verdict
    assert "not built" not in debrief.verdict
    # no outcome was measured: level 4's answer is not claimed from a plan
    assert debrief.assessment is not None
    assert "metric_gated_rollout" not in _observed(debrief.assessment)
    # the controller's store holds the rollout the sprint started
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        assert registry.production(project.spec.name) is None  # rolling out, not promoted
    finally:
        registry.close()

    document = json.loads(result.report["json"].read_text())
    markdown = result.report["md"].read_text()
    assert document["verdict"] == debrief.verdict
    assert debrief.verdict in markdown
    assert document["facts"]["rollout"]["status"] == "pass"
    assert document["facts"]["monitoring"]["status"] == "pass"
    assert document["not_exercised"] == []
    for check in ("monitor and drift drill", "start the gradual rollout"):
        assert check in markdown


def _observed(assessment: dict[str, Any]) -> set[str]:
    """The question ids the assessment answers from the sprint's own observations."""
    found = set()
    for answer in assessment.get("answers") or []:
        if answer.get("source") == "observed":
            found.add(str(answer.get("id")))
    return found


@pytest.mark.slow
def test_the_gate_fails_when_the_load_test_already_falls_back(
    sprinted: tuple[Project, SprintResult], tmp_path: Path
) -> None:
    """A log whose every answer fell back: the healthy run alerts, so the drill proves
    nothing and the monitor's run is not ok (the gate can fail)."""
    project, result = sprinted
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.get(
            project.spec.name, int(result.debrief.facts["rollout_state"]["candidate"])
        )
    finally:
        registry.close()
    folder = Path(result.debrief.facts["prediction_log"]["folder"])
    since = datetime.now(UTC) - timedelta(hours=1)
    records = [
        drilled(orjson.loads(line))
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line
    ]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "predictions-w9-20260101T000000-0000.jsonl").write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in records)
    )
    run = watch_recommender(project, version, broken, since, tmp_path / "scratch", 1)
    assert not run.ok
    assert any("own answers raise the fallback alert" in p for p in run.problems)
    assert not run.exercised().ok


def test_restamped_answers_fill_every_drill_window() -> None:
    now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    records = [{"ts": "t", "request_id": str(i), "path": "model"} for i in range(7)]
    out = restamped(records, now)
    starts = {datetime.fromisoformat(r["ts"]).replace(minute=0, second=0, microsecond=0)
              for r in out}  # fmt: skip
    assert len(starts) == DRILL_WINDOWS
    assert max(starts) + DRILL_WINDOW <= now
    assert len({r["request_id"] for r in out}) == len(out)  # repeats carry new ids
    assert all(
        len([r for r in out if r["ts"].startswith(s.isoformat()[:13])]) >= 50 for s in starts
    )


def test_a_drilled_answer_is_a_popularity_fallback_with_the_same_items() -> None:
    record = {"path": "model", "degraded": False, "reason": None, "request_id": "r1",
              "items": [{"item": "a", "position": 1, "stage": "ease", "score": 0.5}]}  # fmt: skip
    out = drilled(record)
    assert (out["path"], out["degraded"]) == ("fallback:popularity", True)
    assert out["reason"].startswith("model failed")
    assert [i["item"] for i in out["items"]] == ["a"]
    assert record["path"] == "model"  # the original is left alone


@pytest.mark.slow
def test_outcomes_posted_to_the_service_are_read_back_by_position(
    sprinted: tuple[Project, SprintResult], tmp_path: Path
) -> None:
    """post_outcomes on a served candidate (a copy of the sprint's state, its rollout
    aborted so every answer is the candidate's): the monitor credits them by position."""
    import httpx

    from taxiway.rollout.controller import Controller
    from taxiway.sprint.integration import running_service
    from taxiway.sprint.recommend_watch import OUTCOME_NAME, post_outcomes

    original, result = sprinted
    shutil.copytree(original.state_dir, tmp_path / "state")
    project = Project.load(original.spec_path, tmp_path / "state")
    with Controller(project, by="test") as controller:
        controller.abort(reason="the test serves the candidate alone")
    candidate = int(result.debrief.facts["rollout_state"]["candidate"])
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.get(project.spec.name, candidate)
    finally:
        registry.close()
    folder = Path(result.debrief.facts["prediction_log"]["folder"].replace(
        str(original.state_dir), str(project.state_dir)))  # fmt: skip
    since = datetime.now(UTC)
    logged = [orjson.loads(line) for path in folder.glob("*.jsonl")
              for line in path.read_bytes().splitlines()]  # fmt: skip
    users = sorted({str(r["unit"]) for r in logged if r.get("path") == "model"})
    assert len(users) >= 40
    with running_service(project, candidate) as service:
        with httpx.Client(base_url=service.url, headers=service.headers, timeout=10) as client:
            for user in users[:40]:
                assert client.post("/v1/recommend", json={"user": user, "k": 10}).status_code == 200
        posted = post_outcomes(service, folder, since, every=2)
    assert posted == 20
    run = watch_recommender(project, version, folder, since, tmp_path / "scratch", 40)
    rows = run.report["click_through"]["by_name"][OUTCOME_NAME]
    assert [r["position"] for r in rows if r["hits"]][:3] == [1, 2, 3]
    assert sum(r["hits"] for r in rows) == posted == run.outcomes
    assert "click-through by position read back: 20 sprint_click" in run.evidence()
