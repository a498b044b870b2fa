"""What the sprint tells the readiness assessment agrees with its phase table (issue 13,
defect 2): a source in ``warn`` is no contract passed, and missing sign-offs alone are no
"no" to running unattended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taxiway.data.check import CheckReport, SourceCheck
from taxiway.data.findings import Finding
from taxiway.spec.loader import load_spec_text
from taxiway.spec.project import Project
from taxiway.sprint.outcome import Check, Phase, blocker
from taxiway.sprint.phases.data_access import _contracts_passed
from taxiway.sprint.phases.running import _State
from taxiway.sprint.runner import SprintOptions, _unattended

SIGN_OFF = blocker("deployment", "organizational", "the security sign-off is missing",
                   evidence="none", fix="taxiway approve", kind="sign_off")  # fmt: skip
OWNER = blocker("deployment", "organizational", "nobody owns the predictions",
                evidence="no owner", fix="add owner:", kind="spec_line")  # fmt: skip
NOT_EXERCISED = {"declared": {"drift": "psi"}, "observed": None}


def _state(*found: Any, trained: bool = True, facts: dict[str, Any] | None = None) -> _State:
    project = Project(load_spec_text("name: demo"), Path("taxiway.yaml"))
    state = _State(project, SprintOptions(), lambda _p, _w: None, lambda _p: None)
    state.phases = [
        Phase("integration", [Check("service starts", "pass")]),
        Phase("deployment", [Check(b.title, "fail", blocker=b) for b in found]),
    ]
    state.facts = dict(facts or {})
    state.candidate = object() if trained else None  # type: ignore[assignment]
    return state


def test_only_missing_sign_offs_are_no_no_to_running_unattended() -> None:
    # the monitor and the rollout were not exercised: the sprint cannot tell
    state = _state(SIGN_OFF, facts={"monitoring": NOT_EXERCISED, "rollout": NOT_EXERCISED})
    assert _unattended(state, deployed=False) is None
    seen = {"declared": {"x": 1}, "observed": {"ok": True}}
    assert _unattended(_state(SIGN_OFF, facts={"monitoring": seen, "rollout": seen}), False)


def test_another_blocker_is_a_no_naming_it() -> None:
    said = _unattended(_state(SIGN_OFF, OWNER), deployed=False)
    assert isinstance(said, tuple)
    assert said[0] is False
    assert "nobody owns the predictions" in said[1]
    assert "the security sign-off" not in said[1]
    assert _unattended(_state(trained=False), deployed=False) == (False, "it did not deploy")


def _report(*statuses: tuple[str, str | None]) -> CheckReport:
    sources = []
    for name, severity in statuses:
        findings = [] if severity is None else [
            Finding(name, "contract", severity, f"4 row(s) fail on {name}")  # type: ignore[arg-type]
        ]  # fmt: skip
        sources.append(SourceCheck(name, "parquet", f"{name}.parquet", findings=findings))
    return CheckReport("run", "taxiway.yaml", sources)


def test_a_source_with_failing_rows_has_not_passed_its_contract() -> None:
    yes, why = _contracts_passed(_report(("orders", None), ("customers", None)), checked=True)
    assert yes is True
    assert "orders, customers" in why
    no, why = _contracts_passed(
        _report(("orders", "quarantine"), ("customers", "warn"), ("sessions", None)), checked=True
    )
    assert no is False
    assert why == "not passing: orders (quarantine), customers (warn)"
    assert _contracts_passed(_report(("orders", None)), checked=False)[0] is False
