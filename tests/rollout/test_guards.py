"""The guardrails of one look, read from the logs: with interleaving, the interleaved answers
(both models ran for each) are guarded as an arm of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.rollout.guards import guardrail_checks
from taxiway.rollout.units import update_units
from taxiway.spec.models import Rollout

from .traffic import answer, write

T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def _plan(**more: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "steps": [5, 50, 100],
            "metric": {"name": "click", "per": "impression"},
            "guardrails": {"latency_p99_ms": 50, "outcomes": []},
            **more,
        }
    )


def _rails(tmp_path: Path, plan: Rollout) -> dict[str, str]:
    """Each guardrail's status over 400 control, 400 candidate and 400 interleaved answers: the
    arms answer in 5 ms without fallbacks; a quarter of the interleaved answers take 80 ms and
    fall back (the candidate's model failed while control's answered)."""
    records = []
    for n in range(400):
        moment = T0 + timedelta(seconds=n)
        records.append(answer(moment, f"c{n}", "control", version=1, request_id=f"a{n}"))
        records.append(answer(moment, f"t{n}", "candidate", version=2, request_id=f"b{n}"))
        slow = n % 4 == 0
        records.append(
            answer(
                moment,
                f"i{n}",
                "interleaved",
                version=2,
                request_id=f"i{n}",
                latency_ms=80.0 if slow else 5.0,
                path="fallback:popularity" if slow else "model",
                reason="candidate: model failed (RuntimeError)" if slow else None,
            )
        )
    write(tmp_path / "predictions", records)
    units = update_units(
        tmp_path / "state",
        tmp_path / "predictions",
        salt="s",
        started_at=T0,
        boundaries=[(T0, 0)],
        names=["click"],
        latency_limit_ms=50.0,
    )
    exposed = units.units.exposed
    arm = units.units.first_arm
    control, candidate = exposed & (arm == 0), exposed & (arm == 1)
    step = np.zeros(len(arm), np.int64)
    results = guardrail_checks(units, plan, control, candidate, step, 1000)
    return {r.name: r.status for r in results}


def test_interleaved_answers_that_blow_the_budget_breach_their_own_guardrails(
    tmp_path: Path,
) -> None:
    rails = _rails(tmp_path, _plan(interleaving={"share": 10}))
    # the candidate's own answers are fast and never fall back
    assert rails["latency_p99"] != "breached"
    assert rails["fallback_rate"] != "breached"
    assert rails["latency_p99:interleaved"] == "breached"
    assert rails["fallback_rate:interleaved"] == "breached"
    assert rails["error_rate:interleaved"] == "breached"  # the candidate's model failed


def test_without_interleaving_there_are_no_interleaved_guardrails(tmp_path: Path) -> None:
    rails = _rails(tmp_path, _plan())
    assert not [name for name in rails if name.endswith(":interleaved")]
    assert "latency_p99" in rails
