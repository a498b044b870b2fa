"""The controller over replayed traffic: a true lift completes, harm and a latency regression
roll back, assignment bugs are caught by the split checks, a killed controller resumes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from taxiway.errors import RolloutError
from taxiway.models.registry import open_registry
from taxiway.rollout.assignment import arm_for
from taxiway.rollout.controller import Controller
from taxiway.spec.models import Interleaving, Rollout
from taxiway.spec.project import Project

from .traffic import Traffic
from .world import T0, make_project, replay

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "shop")


@pytest.fixture
def controller(project: Project) -> Iterator[Controller]:
    with Controller(project, by="test") as controller:
        yield controller


def traffic_for(controller: Controller, rates: dict[str, float], **changes: object) -> Traffic:
    state = controller.current()
    return Traffic(controller.project.state_dir, state.salt, rates, **changes)  # type: ignore[arg-type]


def test_start_takes_the_newest_candidate_against_production(controller: Controller) -> None:
    state = controller.start(now=T0)

    assert (state.candidate, state.control) == (
        2,
        {"kind": "version", "version": 1, "constant": None},
    )
    assert (state.state, state.step_index, state.share) == ("running", 0, 5.0)
    assert state.plan["guardrails"]["latency_p99_ms"] == 50.0  # the serving budget
    assert [e.kind for e in controller.store.events(state.id)] == ["start"]
    with pytest.raises(RolloutError, match="running rollout already"):
        controller.start(now=T0)


def test_start_refuses_the_production_version_and_names_what_failed(controller: Controller) -> None:
    with pytest.raises(RolloutError, match="already in production"):
        controller.start(candidate=1)
    with pytest.raises(RolloutError, match="passed the handoff audit"):
        controller.start(audited=lambda version: False)
    assert controller.start(audited=lambda version: version.version == 2).candidate == 2


def test_a_true_lift_is_promoted_step_by_step_to_complete(controller: Controller) -> None:
    controller.start(now=T0)
    traffic = traffic_for(controller, {"control": 0.10, "candidate": 0.25})

    run = list(replay(controller, traffic, new=1500, returning=300))

    shares = [share for share, _ in run]
    kinds = [check.verdict.kind for _, check in run]
    assert kinds[-1] == "complete", list(zip(shares, kinds, strict=True))
    promoted = [share for share, check in run if check.verdict.kind == "promote"]
    assert promoted == [5.0, 10.0, 25.0]  # then 50% decides
    assert shares[-1] == 50.0
    final = run[-1][1]
    assert final.state.state == "complete"
    assert final.state.share == 100.0
    assert final.analysis.comparison is not None
    assert final.analysis.comparison.low > 0
    assert final.analysis.srm_ok
    assert final.analysis.both_arms_ok
    registry = open_registry(controller.spec.registry, state_dir=controller.project.state_dir)
    try:
        assert [(v.version, v.stage) for v in registry.list("churn")] == [
            (1, "archived"),
            (2, "production"),
        ]
    finally:
        registry.close()
    events = controller.store.events(final.state.id)
    assert [e.kind for e in events] == ["start", "promote", "promote", "promote", "complete"]
    assert events[-1].evidence["comparison"]["significant_better"] is True
    assert controller.store.verify() == 5


def test_harm_rolls_back_before_the_25_percent_step(controller: Controller) -> None:
    controller.start(now=T0)
    traffic = traffic_for(controller, {"control": 0.30, "candidate": 0.05})

    run = list(replay(controller, traffic, new=1500, returning=300))

    share, last = run[-1]
    assert last.verdict.kind == "rollback", [(s, c.verdict.kind) for s, c in run]
    assert share < 25.0
    assert any("worse in the candidate arm" in reason for reason in last.verdict.reasons)
    assert (last.state.state, last.state.share) == ("rolled_back", 0.0)
    assert controller.store.active("churn") is None


def test_a_latency_regression_trips_the_guardrail(controller: Controller) -> None:
    controller.start(now=T0)
    traffic = traffic_for(
        controller,
        {"control": 0.2, "candidate": 0.2},
        latency_ms={"control": 5.0, "candidate": 80.0},
    )

    run = list(replay(controller, traffic, new=1500))

    share, last = run[-1]
    assert last.verdict.kind == "rollback"
    assert share == 5.0  # at the first step
    [latency] = [g for g in last.analysis.guardrails if g.name == "latency_p99"]
    assert latency.breached
    assert latency.estimate == 1.0
    candidate = next(arm for arm in last.analysis.arms if arm.name == "candidate")
    assert candidate.p99_ms is not None
    assert candidate.p99_ms > 50.0


def test_drift_the_monitor_reports_rolls_back(controller: Controller) -> None:
    import json

    controller.start(now=T0)
    traffic = traffic_for(controller, {"control": 0.2, "candidate": 0.2})
    traffic.visit(5.0, T0, new=500)
    latest = controller.log_folder.parent / "monitor" / "service" / "latest.json"
    latest.parent.mkdir(parents=True)

    def report(at: datetime, status: str) -> None:
        document = {
            "status": "ok",
            "version": 1,
            "report": {
                "generated_at": at.isoformat(),
                "version": 1,
                "features": [{"name": "orders__count_30d", "status": status}],
                "output": {"status": "ok"},
            },
        }
        latest.write_text(json.dumps(document))

    report(T0 - timedelta(hours=1), "drift")  # before the rollout: not its business
    held = controller.check(now=T0 + timedelta(minutes=1))
    assert held.verdict.kind == "hold"
    assert held.analysis.drift == {
        "status": "stale",
        "generated_at": (T0 - timedelta(hours=1)).isoformat(),
        "breached": False,
    }

    report(T0 + timedelta(minutes=2), "drift")
    last = controller.check(now=T0 + timedelta(minutes=3))
    assert last.verdict.kind == "rollback"
    assert "the monitor reports drift (orders__count_30d)" in last.verdict.reasons


def test_a_60_40_split_at_50_percent_is_a_sample_ratio_mismatch(tmp_path: Path) -> None:
    project = make_project(tmp_path / "shop", "  steps: [50, 100]\n  metric: converted\n")
    with Controller(project) as controller:
        controller.start(now=T0)

        def biased(salt: str, unit: str, share: float) -> str:
            return arm_for(salt, unit, min(100.0, share * 1.2))

        traffic = traffic_for(controller, {"control": 0.2, "candidate": 0.2}, rule=biased)
        run = list(replay(controller, traffic, new=1000))

    last = run[-1][1]
    assert last.verdict.kind == "rollback"
    assert not last.analysis.srm_ok
    assert any("sample ratio mismatch" in reason for reason in last.verdict.reasons)


def test_units_flipping_arms_are_caught(controller: Controller) -> None:
    controller.start(now=T0)
    seen: set[str] = set()

    def flipping(salt: str, unit: str, share: float) -> str:
        """A cache that answers every 5th returning unit from the other arm."""
        arm = arm_for(salt, unit, share)
        if unit in seen and int(unit[1:]) % 5 == 0:
            return "control" if arm == "candidate" else "candidate"
        seen.add(unit)
        return arm

    traffic = traffic_for(controller, {"control": 0.2, "candidate": 0.2}, rule=flipping)
    run = list(replay(controller, traffic, new=1000, returning=1000))

    last = run[-1][1]
    assert last.verdict.kind == "rollback"
    assert last.analysis.srm_ok  # each unit's first arm is right: the split looks fine
    assert not last.analysis.both_arms_ok
    assert last.analysis.counts["in_both_arms"] > 0
    assert any("saw both arms" in reason for reason in last.verdict.reasons)


def test_an_a_a_rollout_does_not_complete_early(controller: Controller) -> None:
    controller.start(now=T0)
    traffic = traffic_for(controller, {"control": 0.2, "candidate": 0.2}, seed=3)

    run = list(replay(controller, traffic, new=1500, returning=300, max_checks=25))

    kinds = [check.verdict.kind for _, check in run]
    assert "complete" not in kinds
    assert "rollback" not in kinds
    assert run[-1][0] == 50.0  # promoted through the safety steps, undecided at the last


def test_a_plan_that_reaches_100_percent_completes_when_the_guardrails_held(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "shop", "  steps: [100]\n  min_duration: 10m\n")
    with Controller(project) as controller:
        controller.start(now=T0)
        traffic = traffic_for(controller, {"control": 0.2, "candidate": 0.2})
        traffic.visit(100.0, T0, new=500)
        early = controller.check(now=T0 + timedelta(minutes=5))
        done = controller.check(now=T0 + timedelta(minutes=11))
    assert early.verdict.kind == "hold"
    assert done.verdict.kind == "complete"
    assert done.state.state == "complete"


def test_people_pause_resume_rollback_and_abort(controller: Controller) -> None:
    started = controller.start(now=T0)
    paused = controller.pause(reason="holiday")
    assert paused.state == "paused"
    assert paused.share == 5.0
    traffic = traffic_for(controller, {"control": 0.2, "candidate": 0.2})
    traffic.visit(5.0, T0, new=200)
    held = controller.check(now=T0 + timedelta(hours=2))
    assert held.verdict.kind == "hold"
    assert held.state.state == "paused"
    resumed = controller.resume(now=T0 + timedelta(hours=3))
    assert resumed.state == "running"
    assert resumed.step_started_at == T0 + timedelta(hours=3)
    rolled = controller.rollback(reason="a person said so")
    assert (rolled.state, rolled.share) == ("rolled_back", 0.0)
    with pytest.raises(RolloutError, match="no running or paused rollout"):
        controller.abort()
    kinds = [e.kind for e in controller.store.events(started.id)]
    assert kinds == ["start", "pause", "resume", "rollback"]
    assert controller.store.events(started.id)[1].evidence == {"reason": "holiday"}

    again = controller.start()
    assert controller.abort().state == "aborted"
    assert again.id == started.id + 1


def test_the_loop_checks_until_the_rollout_ends(controller: Controller) -> None:
    controller.start(now=T0)
    traffic = traffic_for(
        controller,
        {"control": 0.2, "candidate": 0.2},
        latency_ms={"control": 5.0, "candidate": 90.0},
    )
    slept: list[float] = []

    def visit(seconds: float) -> None:
        slept.append(seconds)
        traffic.visit(5.0, T0 + timedelta(minutes=len(slept)), new=1500)

    visit(0)
    final = controller.run(sleep=visit, max_checks=10)

    assert final.state == "rolled_back"
    assert slept[1:] == [60.0] * (len(slept) - 1)  # check_every's default


# --------------------------------------------------------------------------- killed mid-way

CHECK = """
import sys
from datetime import datetime
from taxiway.rollout.controller import Controller
from taxiway.spec.project import Project
with Controller(Project.load(sys.argv[1])) as controller:
    controller.check(now=datetime.fromisoformat(sys.argv[2]))
"""


def _check_in_child(spec: Path, now: str, kill_after: float | None) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen([sys.executable, "-c", CHECK, str(spec), now], env=env)
    if kill_after is None:
        return child.wait(timeout=120)
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    return child.wait(timeout=30)


@pytest.mark.parametrize("kill_after", [0.6, 1.2])
def test_a_controller_killed_mid_check_resumes_from_its_stored_state(
    tmp_path: Path, kill_after: float
) -> None:
    project = make_project(tmp_path / "killed")
    with Controller(project) as controller:
        state = controller.start(now=T0)
    traffic = Traffic(project.state_dir, state.salt, {"control": 0.1, "candidate": 0.3})
    traffic.visit(5.0, T0, new=60_000, span_s=1200)
    clean = tmp_path / "clean"
    shutil.copytree(tmp_path / "killed", clean)
    now = (T0 + timedelta(minutes=30)).isoformat()

    _check_in_child(project.spec_path, now, kill_after)  # killed somewhere in the check
    assert _check_in_child(project.spec_path, now, None) == 0
    assert _check_in_child(clean / "taxiway.yaml", now, None) == 0

    with Controller(project) as killed, Controller(Project.load(clean / "taxiway.yaml")) as once:
        resumed, reference = killed.store.latest("churn"), once.store.latest("churn")
        assert resumed is not None
        assert reference is not None
        assert (resumed.state, resumed.step_index) == (reference.state, reference.step_index)
        assert resumed.step_index == 1  # promoted once, not twice
        assert [e.kind for e in killed.store.events(resumed.id)] == ["start", "promote"]
        assert killed.store.verify() == 2
        # the promotion was decided once, on the same evidence as a check never killed
        promoted = killed.store.events(resumed.id)[1].evidence
        assert promoted == once.store.events(reference.id)[1].evidence
        assert promoted["arms"][0]["units"] > 50_000


def test_readiness_level_4_is_observed_only_from_a_decision_on_outcomes(
    controller: Controller,
) -> None:
    from taxiway.sprint.phases.deployment import _decided_on_outcomes

    controller.start(now=T0)
    assert _decided_on_outcomes(controller, "churn") is None  # a start decides nothing
    traffic = traffic_for(controller, {"control": 0.10, "candidate": 0.25})
    run = list(replay(controller, traffic, new=1500, returning=300))
    assert run[-1][1].verdict.kind == "complete"
    decided = _decided_on_outcomes(controller, "churn")
    assert decided is not None
    assert decided.startswith("rollout 1 of v2: complete at ")
    assert "on the measured outcome (difference" in decided


def test_start_refuses_interleaving_for_a_classifier(project: Project) -> None:
    """The loader refuses `rollout.interleaving` without `recommend:`; a plan built in code
    is refused at start too (there is no list to interleave, so the pre-gate would never pass)."""
    plan = (project.spec.rollout or Rollout()).model_copy(
        update={"interleaving": Interleaving(share=5)}
    )
    spec = project.spec.model_copy(update={"rollout": plan})
    with (
        Controller(Project(spec, project.spec_path, project.state_dir)) as controller,
        pytest.raises(RolloutError, match="only a recommender's lists can be interleaved"),
    ):
        controller.start(now=T0)
