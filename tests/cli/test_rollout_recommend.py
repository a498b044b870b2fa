"""`taxiway rollout start|simulate` on a recommend spec: candidates are audited with the
recommender's own handoff audit, and the rehearsal runs through the real recommendation
service."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from tests.serving.recommend_world import NOW, copy_world

from taxiway.cli import main
from taxiway.models.registry import open_registry
from taxiway.rollout.controller import Controller
from taxiway.serving.log import log_files
from taxiway.serving.recommend_service import RecommendService
from taxiway.spec.project import Project

ROLLOUT = (
    "rollout:\n  control: baseline\n  steps: [50, 100]\n  min_duration: 10m\n  min_units: 50\n"
    "  check_every: 5m\n  metric: {name: purchase, direction: increase, min_effect: 0.05}\n"
    "  guardrails: {outcomes: [], latency_p99_ms: 1000}\n"
)


@pytest.fixture
def project(trained_world: Path, tmp_path: Path) -> Project:
    return copy_world(trained_world, tmp_path, serving=ROLLOUT)


def test_start_audits_a_recommend_version_with_the_recommenders_audit(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rollout", "start", "-f", str(project.spec_path), "--state-dir",
                 str(project.state_dir), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "auditing shop-recs v1" in err
    assert "blocked" not in err  # the classifier's audit blocked every recommend version
    state = json.loads(out)
    assert state["candidate"] == 1
    assert state["state"] == "running"


def test_simulate_rehearses_through_the_recommendation_service(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_folder = tmp_path / "simulated"
    code = main(["rollout", "simulate", "-f", str(project.spec_path), "--state-dir",
                 str(project.state_dir), "--lift", "2.0", "--base", "0.1", "--units", "600",
                 "--hours", "1", "--out", str(out_folder), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    points = json.loads(out)
    assert points
    assert points[0]["share"] == 50.0
    records = [
        json.loads(line)
        for path in log_files(out_folder / "replay" / "state" / "predictions")
        for line in path.read_bytes().splitlines()
    ]
    assert 0 < len(records) <= 600  # it stops once the rollout completes or pauses
    assert points[-1]["verdict"] != "rollback"
    assert all(r["items"] for r in records)  # lists shown: the recommendation service answered
    assert {r["arm"] for r in records} == {"control", "candidate"}
    # the baseline control is the candidate's popularity stage
    assert {i["stage"] for r in records if r["arm"] == "control" for i in r["items"]} == {
        "popularity"
    }
    assert (out_folder / "simulation.svg").exists()
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        assert registry.production(project.spec.name) is None  # the project is untouched
    finally:
        registry.close()


def test_status_shows_the_interleaving_pre_gate(
    trained_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = ROLLOUT.replace("steps: [50, 100]", "steps: [20, 50, 100]") + (
        "  interleaving: {share: 40, min_users: 500}\n"
    )
    project = copy_world(trained_world, tmp_path, serving=section)
    with Controller(project) as controller:
        controller.start(candidate=1, now=NOW)
    service = RecommendService(project, clock=lambda: NOW, reload_interval_s=0, rollout_poll_s=0)
    try:
        for user in range(150):
            answer = asyncio.run(service.recommend(str(user), 5))
            if answer["arm"] == "interleaved":
                first = answer["items"][0]
                payload = {"request_id": answer["request_id"], "item": first["item"]}
                asyncio.run(service.outcome({**payload, "name": "purchase", "value": True}))
    finally:
        service.close()
    with Controller(project) as controller:
        result = controller.check(now=NOW + timedelta(minutes=1))
    tested = result.analysis.interleaving
    assert tested is not None
    assert result.verdict.kind == "hold"  # fewer than 500 users with a preference
    code = main(["rollout", "status", "-f", str(project.spec_path), "--state-dir",
                 str(project.state_dir)])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    line = next(text for text in out.splitlines() if text.startswith("interleaving"))
    assert f"{tested.wins} prefer the candidate, {tested.losses} control" in line
    assert "pre-gate not passed" in line
    assert "more interleaved users with a preference" in out
