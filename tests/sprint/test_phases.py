"""The gates that judge what happened: monitoring and rollout pass only on what ran, the
prediction log on the records counted in it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taxiway.spec.loader import load_spec_text
from taxiway.spec.project import Project
from taxiway.sprint.outcome import Check, Exercised
from taxiway.sprint.phases import (
    NOT_EXERCISED,
    governance_checks,
    monitoring_check,
    prediction_log_check,
    rollout_check,
)

RETAIL = Path(__file__).resolve().parents[2] / "examples" / "retail" / "taxiway.yaml"
Gate = Callable[[Project, Exercised | None], tuple[Check, dict[str, Any]]]
GATES: list[tuple[Gate, str, str]] = [
    (monitoring_check, "monitoring", "monitoring"),
    (rollout_check, "rollout", "gradual rollout"),
]


def project_of(text: str) -> Project:
    return Project(load_spec_text(textwrap.dedent(text)), Path("/srv/demo/taxiway.yaml"))


@pytest.mark.parametrize(("gate", "key", "name"), GATES)
def test_a_declared_section_nothing_ran_is_warn_never_pass(gate: Gate, key: str, name: str) -> None:
    project = Project.load(RETAIL)
    check, facts = gate(project, None)
    assert (check.name, check.status, check.blocker) == (name, "warn", None)
    assert check.detail.startswith("declared, not exercised (")
    assert facts == {
        "declared": getattr(project.spec, key).model_dump(mode="json"),
        "observed": None,
        "status": "warn",
        "evidence": NOT_EXERCISED,
    }
    assert NOT_EXERCISED == "declared, not exercised"


@pytest.mark.parametrize(("gate", "key", "name"), GATES)
def test_a_missing_section_stays_a_blocker(gate: Gate, key: str, name: str) -> None:
    check, facts = gate(project_of("name: demo"), None)
    assert check.status == "fail"
    assert check.blocker is not None
    assert check.blocker.critical_path
    assert f"has no `{key}:`" in check.blocker.evidence
    assert facts == {"declared": None, "observed": None, "status": "fail",
                     "evidence": "not declared"}  # fmt: skip


@pytest.mark.parametrize(("gate", "key", "name"), GATES)
def test_only_what_ran_passes_or_fails_the_gate(gate: Gate, key: str, name: str) -> None:
    project = Project.load(RETAIL)
    seen = Exercised(True, "alerted at PSI 0.31 on a shifted copy", {"psi": 0.31})
    check, facts = gate(project, seen)
    assert (check.status, check.detail, check.data) == ("pass", seen.evidence, {"psi": 0.31})
    assert facts["observed"] == {"ok": True, "evidence": seen.evidence, "data": {"psi": 0.31}}
    assert facts["status"] == "pass"
    failed, facts = gate(project, Exercised(False, "no alert fired"))
    assert failed.status == "fail"
    assert failed.blocker is not None
    assert facts["status"] == "fail"


def test_governance_no_longer_passes_monitoring_or_rollout_on_their_declaration() -> None:
    checks = governance_checks(Project.load(RETAIL), [])
    assert not [c for c in checks if "monitoring" in c.name or "rollout" in c.name]


def test_the_log_gate_compares_the_records_counted_with_the_answers() -> None:
    found = {"folder": "p", "answered": 10, "records_written": 10, "refused_unlogged": 0}
    assert prediction_log_check(found, "s.log").status == "pass"
    missing = prediction_log_check({**found, "records_written": 9}, "s.log")
    assert missing.status == "fail"
    assert missing.blocker is not None
    assert missing.blocker.critical_path
    assert "1 answers left unlogged" in missing.detail
    nothing = prediction_log_check({**found, "answered": 0, "records_written": 0}, "s.log")
    assert (nothing.status, nothing.blocker) == ("skip", None)
