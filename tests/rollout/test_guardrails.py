"""Guardrails: a real harm is called a breach, a candidate exactly at its tolerance is
(almost) never called one at any look, and nothing is judged on too little data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import RolloutError
from taxiway.rollout.statistics import ArmStats, Guardrail, check_guardrail, check_guardrails


def rate(name: str, units: int, events: int) -> ArmStats:
    """An arm whose outcome is 1 for ``events`` of its ``units`` units (a rate)."""
    p = events / units
    return ArmStats(name, units, events, p, p * (1 - p) * units / (units - 1))


ERRORS = Guardrail("error_rate", worse="higher", tolerance=0.005)


def test_a_fivefold_error_rate_is_a_breach_and_a_healthy_one_is_ok() -> None:
    control = rate("control", 5_000, 50)
    harmful = check_guardrail(ERRORS, control, rate("candidate", 5_000, 250), alpha=0.05)
    assert harmful.breached
    assert harmful.bound > harmful.threshold == 0.005
    healthy = check_guardrail(ERRORS, control, rate("candidate", 5_000, 55), alpha=0.05)
    assert healthy.status == "ok"


def test_a_control_without_events_does_not_hide_the_candidates() -> None:
    result = check_guardrail(
        ERRORS, rate("control", 1_000, 0), rate("candidate", 1_000, 80), alpha=0.05
    )
    assert result.events == 80
    assert result.breached


def test_nothing_is_judged_on_too_little_data() -> None:
    few_units = check_guardrail(
        ERRORS, rate("control", 99, 5), rate("candidate", 99, 90), alpha=0.05
    )
    few_events = check_guardrail(
        ERRORS, rate("control", 500, 4), rate("candidate", 500, 5), alpha=0.05
    )
    assert few_units.status == few_events.status == "not_enough_data"


def test_an_outcome_that_must_not_fall() -> None:
    revenue = Guardrail("revenue", worse="lower", tolerance=0.5)
    control = ArmStats("control", 4_000, 400, 5.0, 250.0)
    dropped = check_guardrail(
        revenue, control, ArmStats("candidate", 4_000, 300, 2.5, 180.0), alpha=0.05
    )
    assert dropped.breached
    assert dropped.bound < dropped.threshold == -0.5
    rose = check_guardrail(
        revenue, control, ArmStats("candidate", 4_000, 500, 7.0, 300.0), alpha=0.05
    )
    assert rose.status == "ok"


def test_an_absolute_limit_and_p99_latency_as_a_rate_over_budget() -> None:
    # p99 latency within budget <=> at most 1% of answers slower than the budget
    slow = Guardrail("latency_p99_ms", limit=0.01)
    assert check_guardrail(slow, None, rate("candidate", 20_000, 600), alpha=0.05).breached
    assert check_guardrail(slow, None, rate("candidate", 20_000, 150), alpha=0.05).status == "ok"
    with pytest.raises(RolloutError, match="no limit"):
        check_guardrail(ERRORS, None, rate("candidate", 20_000, 150), alpha=0.05)


def test_alpha_is_split_across_the_guardrails() -> None:
    arm = rate("arm", 1_000, 20)
    results = check_guardrails([(ERRORS, arm, arm)] * 4, alpha=0.05)
    assert [r.alpha for r in results] == [0.0125] * 4
    assert check_guardrails([]) == []
    # a split alpha widens the bound: a harm called alone may not be called among four
    control, candidate = rate("control", 3_000, 30), rate("candidate", 3_000, 75)
    alone = check_guardrails([(ERRORS, control, candidate)])[0]
    among = check_guardrails([(ERRORS, control, candidate)] * 4)[0]
    assert alone.bound > among.bound


@settings(derandomize=True, deadline=None, max_examples=5)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_at_exactly_the_tolerance_a_breach_is_rare_at_every_look(seed: int) -> None:
    # 400 rollouts, 20 looks of 500 units per arm: control errs 2%, the candidate 2.5% (worse
    # by exactly the tolerance). Called breached at some look in at most alpha of them.
    rng = np.random.default_rng(seed)
    control = rng.binomial(500, 0.020, (400, 20)).cumsum(axis=1)
    candidate = rng.binomial(500, 0.025, (400, 20)).cumsum(axis=1)
    breached = 0
    for c_row, t_row in zip(control, candidate, strict=True):
        breached += any(
            check_guardrail(
                ERRORS,
                rate("control", 500 * (look + 1), int(c)),
                rate("candidate", 500 * (look + 1), int(t)),
                alpha=0.05,
            ).breached
            for look, (c, t) in enumerate(zip(c_row, t_row, strict=True))
        )
    assert breached / 400 <= 0.05
