"""The promotion gate (one definition for the sprint's deployment phase and `models promote`)
and the override records it leaves in the approvals log."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxiway.errors import GovernanceError
from taxiway.models.audit import AuditReport
from taxiway.spec.project import Project
from taxiway.sprint.approvals import (
    OVERRIDE_ROLE,
    approvals_path,
    missing_approvals,
    overrides,
    read_approvals,
    record_approval,
    record_override,
    sign_offs,
)
from taxiway.sprint.gates import critical_blockers, deployment_checks
from taxiway.sprint.phases import audit_checks

READY = """\
name: ready
owner: growth-team
monitoring: {drift: psi}
rollout: {control: baseline, steps: [5, 100], metric: churned}
governance:
  approvals: [security]
  action: the retention team calls customers scored above 0.7
"""


def _project(tmp_path: Path, text: str, env: str = "") -> Project:
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(text + env)
    return Project.load(spec, tmp_path / "state")


def _titles(project: Project) -> list[str]:
    checks, _ = deployment_checks(project, sign_offs(project))
    return [b.title for b in critical_blockers(checks)]


def test_a_bare_spec_is_blocked_on_owner_action_monitoring_and_rollout(tmp_path: Path) -> None:
    assert _titles(_project(tmp_path, "name: bare\n")) == [
        "nobody owns the predictions",
        "no one acts on the predictions",
        "no monitoring is declared",
        "no gradual rollout is planned",
    ]


def test_a_declared_spec_is_blocked_only_until_its_sign_offs_are_in(tmp_path: Path) -> None:
    project = _project(tmp_path, READY)
    assert _titles(project) == ["the security sign-off is missing"]
    record_approval(project, "security", "Ann Lee")
    assert _titles(project) == []
    checks, used = deployment_checks(project, sign_offs(project))
    # declared, not exercised outside a sprint: a warning the promotion passes, as in the sprint
    assert {c.name: c.status for c in checks}["monitoring"] == "warn"
    assert used["rollout"]["evidence"] == "declared, not exercised"


def test_audit_blockers_are_gate_blockers_and_warnings_are_not() -> None:
    audit = AuditReport(name="churn", version=3)
    audit.add("leakage", "blocker", "account__status", "no event time", "declare a timestamp")
    audit.add("latency", "warning", None, "the store was empty", "materialize")
    assert [b.title for b in critical_blockers(audit_checks(audit))] == ["leakage: account__status"]


def test_an_override_is_chained_with_the_sign_offs_and_is_never_one(tmp_path: Path) -> None:
    project = _project(tmp_path, READY)
    record_approval(project, "security", "Ann Lee")
    record = record_override(
        project, "Bo Chen", "incident 42", "promoted ready v2 to production", ["leakage: x"]
    )
    record_approval(project, "security", "Cy Diaz")
    assert [a.seq for a in read_approvals(project)] == [1, 2, 3]  # one verified chain
    assert (record.role, record.by, record.seq) == (OVERRIDE_ROLE, "Bo Chen", 2)
    assert record.note == (
        "promoted ready v2 to production; reason: incident 42; overridden (1): leakage: x"
    )
    assert overrides(project) == [record]
    [signed] = sign_offs(project)
    assert signed.approval is not None
    assert signed.approval.by == "Cy Diaz"


def test_an_override_counts_for_no_role_even_one_named_like_it(tmp_path: Path) -> None:
    project = _project(tmp_path, READY.replace("[security]", f"[security, {OVERRIDE_ROLE}]"))
    record_override(project, "Bo Chen", "demo", "promoted ready v1 to production", [])
    assert missing_approvals(project) == ["security", OVERRIDE_ROLE]
    with pytest.raises(GovernanceError, match="kept for the records of promotions forced"):
        record_approval(project, OVERRIDE_ROLE, "Bo Chen")


@pytest.mark.parametrize(("by", "reason"), [("Bo Chen", " "), (" ", "incident 42")])
def test_an_override_needs_a_name_and_a_reason(tmp_path: Path, by: str, reason: str) -> None:
    project = _project(tmp_path, READY)
    with pytest.raises(GovernanceError):
        record_override(project, by, reason, "promoted ready v1 to production", [])
    assert not approvals_path(project).exists()


def test_an_override_is_signed_with_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READY_SIGNING_KEY", "k" * 32)
    project = _project(tmp_path, READY, "  signing_key_env: READY_SIGNING_KEY\n")
    record = record_override(project, "Bo Chen", "demo", "promoted ready v1 to production", [])
    assert record.mac is not None
    assert overrides(project) == [record]  # read back: its mac verified with the key
