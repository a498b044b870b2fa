"""How long a fix takes comes from the kind of fix, one function for every blocker."""

from __future__ import annotations

import pytest

from taxiway.sprint.debrief import WITHIN_30_DAYS, Debrief
from taxiway.sprint.outcome import (
    ESTIMATE_ORDER,
    FIX_KINDS,
    Check,
    Phase,
    blocker,
    effort,
)


def test_an_environment_variable_or_a_spec_line_takes_minutes() -> None:
    assert effort("setting").estimate == "minutes"
    assert effort("spec_line").estimate == "minutes"


def test_a_grant_takes_hours_and_the_dba_acts() -> None:
    grant = effort("grant")
    assert (grant.estimate, grant.who) == ("hours", "the DBA")
    assert effort("grant", who="the DBA of crm-db").who == "the DBA of crm-db"


def test_retraining_takes_the_measured_training_time() -> None:
    assert effort("retrain", measured_s=37.0).estimate == "minutes"
    assert "37 s" in effort("retrain", measured_s=37.0).basis
    assert effort("retrain", measured_s=3 * 3600).estimate == "hours"
    assert effort("retrain", measured_s=2 * 24 * 3600).estimate == "days"
    assert effort("retrain").estimate == "hours"  # not measured: the kind's own estimate


def test_a_new_data_source_takes_days() -> None:
    assert effort("new_source").estimate == "days"


def test_every_kind_has_an_estimate_on_the_scale_and_someone_who_acts() -> None:
    for kind in FIX_KINDS:
        found = effort(kind)
        assert found.estimate in ESTIMATE_ORDER
        assert found.who
        assert found.basis
    with pytest.raises(ValueError, match="unknown fix kind"):
        effort("magic")  # type: ignore[arg-type]


def test_minutes_are_the_shortest_estimate_and_fit_in_30_days() -> None:
    assert min(ESTIMATE_ORDER, key=ESTIMATE_ORDER.__getitem__) == "minutes"
    assert "minutes" in WITHIN_30_DAYS


def test_the_env_var_fix_is_not_called_the_longest() -> None:
    env = blocker("data_access", "technical", "BLOCKED_CRM_URL is not set", evidence="unset",
                  fix="export BLOCKED_CRM_URL=...", kind="setting")  # fmt: skip
    review = blocker("deployment", "organizational", "the security sign-off is missing",
                     evidence="none", fix="taxiway approve", kind="sign_off",
                     who="the security reviewer")  # fmt: skip
    d = Debrief("x", "t.yaml", "", "", [
        Phase("data_access", [Check("source crm", "fail", blocker=env)]),
        Phase("deployment", [Check("sign-off security", "fail", blocker=review)]),
    ], deployed=False)  # fmt: skip
    assert d.time_to_deploy == "days"
    how_long = next(q for q in d.questions() if q["id"] == "how_long")
    assert "the security sign-off is missing" in how_long["answer"]
    assert "BLOCKED_CRM_URL" not in how_long["answer"]
    again = Debrief.from_dict(d.as_dict())
    assert again.blockers[0].who == "whoever runs the sprint"
    assert again.blockers[0].kind == "setting"
    assert again.as_dict() == d.as_dict()
