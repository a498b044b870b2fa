"""One look at a rollout, on logs written with the service's writer: who counts, strata by
step, CUPED, the split, the guardrails."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.rollout.analysis import Analysis, analyse, steps_of
from taxiway.rollout.assignment import arm_for
from taxiway.rollout.records import RolloutState
from taxiway.rollout.statistics import planned_units
from taxiway.rollout.strata import compare_strata, strata_difference
from taxiway.rollout.units import update_units
from taxiway.spec.models import Rollout

from .traffic import answer, outcome, write
from .world import T0

SALT = "analysis-salt"
HOUR = timedelta(hours=1)


def rollout(steps: list[float], step_index: int) -> RolloutState:
    return RolloutState(
        id=1,
        name="churn",
        salt=SALT,
        control={"kind": "version", "version": 1, "constant": None},
        candidate=2,
        unit=None,
        steps=steps,
        step_index=step_index,
        share=steps[step_index],
        state="running",
        started_at=T0,
        step_started_at=T0,
        updated_at=T0,
        verdict=None,
        plan={},
    )


def plan(**changes: Any) -> Rollout:
    fields: dict[str, Any] = {
        "metric": {"name": "converted", "min_effect": 0.05},
        "guardrails": {"latency_p99_ms": 50},
    }
    fields.update(changes)
    return Rollout.model_validate(fields)


def look(
    tmp_path: Path,
    answers: list[dict[str, Any]],
    outcomes: list[dict[str, Any]],
    state: RolloutState,
    boundaries: list[Any],
    the_plan: Rollout | None = None,
) -> Analysis:
    write(tmp_path / "predictions", answers)
    if outcomes:
        write(tmp_path / "outcomes", outcomes)
    the_plan = the_plan or plan()
    names = [the_plan.metric.name] if the_plan.metric else []
    units = update_units(
        tmp_path / "rollout" / "1",
        tmp_path / "predictions",
        salt=SALT,
        started_at=T0,
        boundaries=boundaries,
        names=names + list(the_plan.guardrails.outcomes),
        latency_limit_ms=the_plan.guardrails.latency_p99_ms,
    )
    return analyse(units, state, the_plan, boundaries=boundaries)


def ramp(
    rng: np.random.Generator,
    per_step: list[int],
    shares: list[float],
    rate: dict[str, float],
    *,
    window_effect: bool = False,
    pre_rate: float = 0.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Units first answered step after step (one hour each), each converting with its arm's
    rate; with ``window_effect`` a unit converts again for every further hour it was watched
    (earlier units have longer windows), the same in both arms."""
    answers, outcomes = [], []
    steps = len(shares)
    number = 0
    for index, (count, share) in enumerate(zip(per_step, shares, strict=True)):
        for _ in range(count):
            unit = f"u{number}"
            number += 1
            at = T0 + index * HOUR + timedelta(seconds=float(rng.uniform(1, 3000)))
            arm = arm_for(SALT, unit, share)
            answers.append(answer(at, unit, arm, version=2 if arm == "candidate" else 1))
            if rng.random() < pre_rate:
                outcomes.append(outcome(at - timedelta(days=3), unit, True))
            chances = (steps - index) if window_effect else 1
            if any(rng.random() < rate[arm] for _ in range(chances)):
                outcomes.append(outcome(at + timedelta(seconds=30), unit, True))
    return answers, outcomes


def test_steps_of_maps_times_to_the_step_they_fell_in() -> None:
    boundaries = [(T0, 0), (T0 + HOUR, 1), (T0 + 2 * HOUR, 2)]
    micros = np.array([int((T0 + k * HOUR / 2).timestamp() * 1e6) for k in range(-1, 6)])
    assert steps_of(micros, boundaries).tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_strata_keep_a_longer_window_from_passing_for_harm(tmp_path: Path) -> None:
    """Early units (mostly control, at 5%) were watched longer: pooled, control looks better;
    within each step's units the arms are alike."""
    rng = np.random.default_rng(7)
    shares = [5.0, 50.0]
    answers, outcomes = ramp(
        rng, [6000, 3000], shares, {"control": 0.3, "candidate": 0.3}, window_effect=True
    )
    boundaries = [(T0, 0), (T0 + HOUR, 1)]

    analysis = look(tmp_path, answers, outcomes, rollout([*shares, 100.0], 1), boundaries)

    comparison = analysis.comparison
    assert comparison is not None
    assert comparison.low < 0 < comparison.high  # no difference found
    assert not comparison.significant_worse
    control, candidate = analysis.arms
    assert control.mean is not None
    assert candidate.mean is not None
    assert control.mean - candidate.mean > 0.05  # what pooling the arms would have read


def test_control_units_a_later_step_moved_are_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    shares = [5.0, 50.0]
    answers, outcomes = ramp(rng, [2000, 0], shares, {"control": 0.2, "candidate": 0.2})
    boundaries = [(T0, 0), (T0 + HOUR, 1)]

    at_5 = look(tmp_path / "a", answers, outcomes, rollout(shares, 0), boundaries)
    at_50 = look(tmp_path / "b", answers, outcomes, rollout(shares, 1), boundaries)

    control_5, control_50 = at_5.arms[0].units, at_50.arms[0].units
    buckets_below = sum(
        1
        for a in answers
        if a["arm"] == "control" and arm_for(SALT, a["unit"], 50.0) == "candidate"
    )
    assert control_5 - control_50 == buckets_below
    assert at_50.counts["moved_to_candidate"] == buckets_below
    assert 800 < buckets_below < 1100  # about 45% of 2000


def test_cuped_narrows_the_interval_when_the_past_predicts(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    answers, outcomes = [], []
    for i in range(4000):
        unit = f"u{i}"
        arm = arm_for(SALT, unit, 50.0)
        at = T0 + timedelta(seconds=i)
        answers.append(answer(at, unit, arm, version=1))
        spender = rng.random() < 0.3
        value = float(rng.poisson(20 if spender else 1))
        outcomes.append(outcome(at - timedelta(days=7), unit, value, "revenue"))
        outcomes.append(outcome(at + timedelta(minutes=1), unit, value + rng.poisson(2), "revenue"))
    with_revenue = plan(metric={"name": "revenue", "min_effect": 1.0})
    state = rollout([50.0, 100.0], 0)

    analysis = look(tmp_path, answers, outcomes, state, [(T0, 0)], with_revenue)

    assert analysis.cuped["theta"] == pytest.approx(1.0, abs=0.1)
    assert analysis.cuped["variance_reduction"] > 0.8
    comparison = analysis.comparison
    assert comparison is not None
    control = analysis.arms[0].interval
    assert control is not None
    assert comparison.high - comparison.low < (control[1] - control[0])


def test_a_split_off_its_shares_fails_the_srm_check(tmp_path: Path) -> None:
    answers = [
        answer(T0 + timedelta(seconds=i), f"u{i}", "candidate" if i % 10 < 3 else "control",
               version=1)
        for i in range(3000)
    ]  # fmt: skip
    analysis = look(tmp_path, answers, [], rollout([10.0, 100.0], 0), [(T0, 0)])
    assert not analysis.srm_ok
    assert analysis.srm["observed"] == {"control": 2100, "candidate": 900}
    assert analysis.srm["expected"] == {"control": 2700.0, "candidate": 300.0}


@settings(derandomize=True, deadline=None, max_examples=15)
@given(share=st.sampled_from([5.0, 10.0, 25.0, 50.0]), n=st.integers(200, 3000))
def test_the_real_assignment_passes_the_srm_check(
    tmp_path_factory: pytest.TempPathFactory, share: float, n: int
) -> None:
    folder = tmp_path_factory.mktemp("srm")
    answers = [
        answer(T0 + timedelta(seconds=i), f"u{i}", arm_for(SALT, f"u{i}", share), version=1)
        for i in range(n)
    ]
    analysis = look(folder, answers, [], rollout([share, 100.0], 0), [(T0, 0)])
    assert analysis.srm_ok
    assert analysis.both_arms_ok


def test_guardrails_read_errors_fallbacks_and_outcomes(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    answers, outcomes = [], []
    for i in range(6000):
        unit = f"u{i}"
        arm = arm_for(SALT, unit, 50.0)
        at = T0 + timedelta(seconds=i)
        bad = arm == "candidate" and rng.random() < 0.2
        answers.append(
            answer(at, unit, arm, version=1, path="fallback:baseline" if bad else "model",
                   reason="model failed: boom" if bad else None)
        )  # fmt: skip
        spend = float(rng.poisson(10 if arm == "control" else 5))
        outcomes.append(outcome(at + timedelta(minutes=1), unit, spend, "revenue"))
        outcomes.append(outcome(at + timedelta(minutes=1), unit, bool(rng.random() < 0.2)))
    guarded = plan(guardrails={"latency_p99_ms": 50, "outcomes": ["revenue"]})

    analysis = look(tmp_path, answers, outcomes, rollout([50.0, 100.0], 0), [(T0, 0)], guarded)

    status = {g.name: g.status for g in analysis.guardrails}
    assert status == {
        "latency_p99": "not_enough_data",  # no slow answer: no event to judge by
        "error_rate": "breached",
        "fallback_rate": "breached",
        "outcome:revenue": "breached",
    }
    assert {g.alpha for g in analysis.guardrails} == {0.05 / 4}
    assert sorted(analysis.breached) == ["error_rate", "fallback_rate", "outcome:revenue"]


def test_a_a_rollouts_checked_after_every_batch_rarely_decide() -> None:
    """500 simulated A/A ramps (5, 10, 25, 50%), looked at after every batch with the
    analysis's own comparison (strata, control above the reached share): the candidate is
    called better at the last decision, or worse anywhere, in at most 5% of them."""
    rng = np.random.default_rng(11)
    shares = np.array([5.0, 10.0, 25.0, 50.0])
    looks_per_step, per_look, rollouts = 4, 400, 500
    planned = planned_units(0.05, 0.4)
    completed = rolled_back = 0
    for _ in range(rollouts):
        n = len(shares) * looks_per_step * per_look
        step = np.repeat(np.arange(len(shares)), looks_per_step * per_look)
        buckets = rng.uniform(0, 100, n)
        converted = (rng.random(n) < 0.2).astype(np.float64)
        candidate_all = buckets < shares[step]
        better = worse = False
        for look in range(1, len(shares) * looks_per_step + 1):
            seen = np.arange(n) < look * per_look
            reached = shares[(look - 1) // looks_per_step]
            candidate = seen & candidate_all
            control = seen & ~candidate_all & (buckets >= reached)
            comparison = compare_strata(
                converted, control, candidate, step,
                alpha=0.05, planned=planned, increase=True, control_mean=0.2,
            )  # fmt: skip
            enough = bool(min(np.count_nonzero(control), np.count_nonzero(candidate)) >= 100)
            worse = worse or (enough and comparison.significant_worse)
            better = better or (reached == 50.0 and enough and comparison.significant_better)
        completed += better
        rolled_back += worse
    assert completed / rollouts <= 0.05
    assert rolled_back / rollouts <= 0.05


outcomes_st = st.lists(st.floats(0, 100, allow_nan=False), min_size=4, max_size=60)


@settings(derandomize=True, deadline=None, max_examples=60)
@given(values=outcomes_st, seed=st.integers(0, 10_000))
def test_one_stratum_is_the_plain_difference(values: list[float], seed: int) -> None:
    y = np.array(values)
    arm = np.random.default_rng(seed).permutation(np.arange(len(y)) % 2)
    step = np.zeros(len(y), np.int64)
    diff, _, n_c, n_t = strata_difference(y, arm == 0, arm == 1, step)
    assert diff == pytest.approx(y[arm == 1].mean() - y[arm == 0].mean(), abs=1e-9)
    assert (n_c, n_t) == (int(np.count_nonzero(arm == 0)), int(np.count_nonzero(arm == 1)))


@settings(derandomize=True, deadline=None, max_examples=60)
@given(
    values=outcomes_st,
    shifts=st.lists(st.floats(-50, 50, allow_nan=False), min_size=3, max_size=3),
    seed=st.integers(0, 10_000),
)
def test_what_differs_between_steps_alike_in_both_arms_cancels(
    values: list[float], shifts: list[float], seed: int
) -> None:
    """A step's units watched longer (a shift added to every unit of a stratum, in both
    arms) change neither the difference nor its variance."""
    y = np.array(values)
    rng = np.random.default_rng(seed)
    arm = rng.permutation(np.arange(len(y)) % 2)
    step = rng.integers(0, 3, len(y))
    shifted = y + np.array(shifts)[step]
    before = strata_difference(y, arm == 0, arm == 1, step)
    after = strata_difference(shifted, arm == 0, arm == 1, step)
    assert after[0] == pytest.approx(before[0], abs=1e-6)
    assert after[1] == pytest.approx(before[1], rel=1e-6, abs=1e-9)


def test_units_the_growing_share_moved_are_no_evidence_of_a_mismatch(tmp_path: Path) -> None:
    """2,000 units first answered at 5%, all back at 50% (about 45% of the control ones now
    answered by the candidate, as sticky assignment does), and 1,000 new ones at 50%: each unit
    counts at the step of its first answer, in the arm it had then, so the split holds."""
    rng = np.random.default_rng(5)
    first, _ = ramp(rng, [2000, 0], [5.0, 50.0], {"control": 0.0, "candidate": 0.0})
    again = [
        answer(T0 + HOUR + timedelta(seconds=i), a["unit"], arm, version=1)
        for i, a in enumerate(first)
        for arm in [arm_for(SALT, a["unit"], 50.0)]
    ]
    new = [
        answer(T0 + HOUR + timedelta(seconds=i), f"n{i}", arm_for(SALT, f"n{i}", 50.0), version=1)
        for i in range(1000)
    ]
    moved = sum(a["arm"] == "candidate" for a in again) - sum(
        a["arm"] == "candidate" for a in first
    )
    boundaries = [(T0, 0), (T0 + HOUR, 1)]

    analysis = look(tmp_path, first + again + new, [], rollout([5.0, 50.0], 1), boundaries)

    assert moved > 700  # the units moved: were they counted where they are now, 5% would fail
    assert analysis.srm_ok
    assert not analysis.srm["chi2_halt"]
    assert analysis.srm["observed"]["candidate"] == sum(
        a["arm"] == "candidate" for a in first + new
    )
    assert analysis.counts["in_both_arms"] == 0


def test_the_evidence_counts_outcomes_posted_by_request_id(tmp_path: Path) -> None:
    answers = [
        answer(T0 + timedelta(seconds=i), f"u{i}", "control", version=1, request_id=f"r{i}")
        for i in range(3)
    ]
    late = T0 + 3 * HOUR
    posted = [
        {**outcome(T0 + timedelta(minutes=1), None, True), "request_id": "r1"},
        {**outcome(T0 + timedelta(minutes=2), None, True), "request_id": "not-yet"},
        {**outcome(T0 + timedelta(minutes=3), None, True), "request_id": "never"},
    ]
    posted[2]["received_at"] = T0.isoformat()
    answers.append(answer(late, "u9", "control", version=1, request_id="r9"))
    posted[1]["received_at"] = late.isoformat()

    analysis = look(tmp_path, answers, posted, rollout([50.0, 100.0], 0), [(T0, 0)])

    counts = analysis.evidence()["counts"]
    assert (counts["outcomes_by_request"], counts["outcomes_pending"]) == (1, 1)
    assert counts["outcomes_expired"] == 1
