"""The verdict with the interleaving pre-gate: the first step holds until ``min_users``
interleaved users have a preference, a candidate users prefer less is rolled back at any step,
and a later step is not held by it. The split check expects control's share less the
interleaved users'."""

from __future__ import annotations

from datetime import timedelta

from taxiway.rollout.analysis import Analysis, ArmSummary, split_check
from taxiway.rollout.records import RolloutState
from taxiway.rollout.statistics import interleaving_test
from taxiway.rollout.verdict import decide
from taxiway.spec.models import Rollout

from .world import T0

PLAN = Rollout.model_validate(
    {
        "steps": [5, 50, 100],
        "min_duration": "1m",
        "metric": {"name": "click", "per": "impression"},
        "interleaving": {"share": 5, "min_users": 200},
    }
)


def _state(step_index: int) -> RolloutState:
    return RolloutState(
        id=1,
        name="shop-recs",
        salt="s",
        control={"kind": "baseline", "version": 1, "constant": None},
        candidate=2,
        unit="user",
        steps=[5.0, 50.0, 100.0],
        step_index=step_index,
        share=[5.0, 50.0, 100.0][step_index],
        state="running",
        started_at=T0,
        step_started_at=T0,
        updated_at=T0,
        verdict=None,
        plan={},
    )


def _analysis(wins: int, losses: int) -> Analysis:
    arm = ArmSummary("control", 1, 500, 50, 0.1, None, 500, 0.0, 0.0, 5.0)
    return Analysis(
        arms=[arm, ArmSummary("candidate", 2, 500, 50, 0.1, None, 500, 0.0, 0.0, 5.0)],
        enough=True,
        step_units={"control": 500, "candidate": 500},
        srm={},
        srm_ok=True,
        both_arms={},
        both_arms_ok=True,
        comparison=None,
        cuped={},
        planned_n=1000,
        guardrails=[],
        drift=None,
        interleaving=interleaving_test(wins, losses, alpha=0.05, planned_users=200),
        interleaved={"share": 5.0, "users": wins + losses, "answers": wins + losses},
    )


NOW = T0 + timedelta(hours=1)


def test_the_first_step_holds_until_the_pre_gate_has_its_users() -> None:
    verdict = decide(_analysis(30, 25), _state(0), PLAN, NOW)
    assert verdict.kind == "hold"
    assert any("145 more interleaved users with a preference" in need for need in verdict.needs)
    assert verdict.evidence["interleaving"]["wins"] == 30


def test_the_pre_gate_passed_promotes_and_says_so() -> None:
    verdict = decide(_analysis(110, 100), _state(0), PLAN, NOW)
    assert verdict.kind == "promote"
    assert any("interleaving pre-gate passed: 110 users" in r for r in verdict.reasons)


def test_a_candidate_users_prefer_less_is_rolled_back_with_the_reason() -> None:
    for step in (0, 1):
        verdict = decide(_analysis(20, 60), _state(step), PLAN, NOW)
        assert verdict.kind == "rollback"
        assert "interleaving: users prefer control's list: 20 prefer" in verdict.reasons[0]


def test_a_later_step_is_not_held_by_the_pre_gate() -> None:
    verdict = decide(_analysis(3, 2), _state(1), PLAN, NOW)
    assert verdict.kind != "rollback"
    assert not any("interleaved" in need for need in verdict.needs)


def test_the_split_check_expects_control_less_the_interleaved_users() -> None:
    counts = [{"control": 5_000, "candidate": 2_000}]  # 20% candidate, 30% interleaved apart
    assert split_check(counts, [20.0], interleaved=30.0)[1] is True
    assert split_check(counts, [20.0])[1] is False
