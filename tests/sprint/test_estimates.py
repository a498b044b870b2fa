"""Every blocker the sprint raises takes its estimate and who acts from the kind of its fix
(issue 13, defect 4): a variable or a spec line is minutes, a GRANT hours with the DBA acting,
a leak the measured training time, a missing input a new source (days)."""

from __future__ import annotations

from pathlib import Path

from taxiway.data.check import CheckReport, SourceCheck
from taxiway.data.findings import Finding
from taxiway.models.audit.coverage import NO_ACTION, NO_OWNER
from taxiway.models.audit.findings import AuditReport
from taxiway.spec.project import Project
from taxiway.sprint.approvals import sign_offs
from taxiway.sprint.outcome import Blocker, Check
from taxiway.sprint.phases import audit_checks, data_checks, governance_checks


def _blocker_of(check: Check) -> Blocker:
    assert check.blocker is not None, check
    return check.blocker


def _source(finding: Finding) -> Check:
    report = CheckReport("run", "taxiway.yaml", [SourceCheck(finding.source, "postgres", "db",
                                                             findings=[finding])])  # fmt: skip
    (check,) = data_checks(report)
    return check


def test_an_unset_environment_variable_takes_minutes() -> None:
    found = _blocker_of(_source(Finding(
        "crm", "access.connect", "block", "source `crm`: environment variable BLOCKED_CRM_URL "
        "is not set", fix="export BLOCKED_CRM_URL=... before running taxiway")))  # fmt: skip
    assert (found.kind, found.estimate) == ("setting", "minutes")


def test_a_grant_takes_hours_and_the_dba_acts() -> None:
    found = _blocker_of(_source(Finding(
        "crm", "access.table", "block", "ml_reader has no SELECT on table crm.accounts",
        fix="GRANT SELECT ON crm.accounts TO ml_reader;")))  # fmt: skip
    assert (found.kind, found.estimate, found.who) == ("grant", "hours", "the DBA")
    assert found.category == "organizational"


def test_a_contract_rule_the_producer_must_fix_takes_weeks() -> None:
    found = _blocker_of(_source(Finding("orders", "contract", "block", "amount < 0 in 40% of rows",
                                        fix="fix the producer")))  # fmt: skip
    assert (found.kind, found.estimate) == ("data_fix", "weeks")
    assert "orders" in (found.who or "")


def _audit(*findings: tuple[str, str | None, str]) -> AuditReport:
    report = AuditReport("m", 1)
    for check, feature, evidence in findings:
        report.add(check, "blocker", feature, evidence, f"fix {check}")
    return report


def test_a_leak_takes_the_measured_training_time() -> None:
    report = _audit(("leakage", "account__status", "account__status comes from the future"))
    (found,) = [c.blocker for c in audit_checks(report, training_s=37.0) if c.blocker]
    assert (found.kind, found.estimate) == ("retrain", "minutes")
    assert "37 s" in found.basis
    (slow,) = [c.blocker for c in audit_checks(report, training_s=3 * 3600.0) if c.blocker]
    assert slow.estimate == "hours"


def test_an_input_missing_at_prediction_time_is_a_new_source_days() -> None:
    report = _audit(("availability", "crm__plan", "crm__plan is not known at prediction time"))
    (found,) = [c.blocker for c in audit_checks(report) if c.blocker]
    assert (found.kind, found.estimate) == ("new_source", "days")


def test_adding_owner_or_action_takes_minutes_and_a_sign_off_days_by_its_reviewer(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "taxiway.yaml"
    spec.write_text("name: demo\ngovernance: {approvals: [security]}\n")
    project = Project.load(spec)
    checks = {c.name: c for c in governance_checks(project, sign_offs(project))}
    owner, action = _blocker_of(checks["owner declared"]), _blocker_of(checks["action declared"])
    assert (owner.kind, owner.estimate) == ("spec_line", "minutes")
    assert (action.kind, action.estimate) == ("spec_line", "minutes")
    security = _blocker_of(checks["sign-off security"])
    assert (security.kind, security.estimate, security.who) == (
        "sign_off", "days", "the security reviewer")  # fmt: skip


def test_the_audit_coverage_check_fails_when_the_audit_lists_coverage_blockers() -> None:
    """Issue 13, defect 2: the phase table said `audit coverage | pass` while the audit
    section listed two coverage blockers. The blockers themselves stay under deployment."""
    report = _audit(
        ("coverage", None, f"{NO_OWNER}: nobody is accountable"),
        ("coverage", None, f"{NO_ACTION}: nobody acts"),
    )
    checks = {c.name: c for c in audit_checks(report)}
    coverage = checks["audit coverage"]
    assert coverage.status == "fail"
    assert coverage.blocker is None  # reported once, by the deployment phase
    assert "owner declared" in coverage.detail
    assert "action declared" in coverage.detail
    assert checks["audit leakage"].status == "pass"


def test_a_check_the_audit_could_not_apply_is_skipped_not_passed() -> None:
    report = AuditReport("m", 1, checks={"skew": "not applicable"})
    checks = {c.name: c for c in audit_checks(report)}
    assert (checks["audit skew"].status, checks["audit skew"].detail) == ("skip", "not applicable")


def test_two_coverage_findings_about_no_one_feature_have_their_own_titles() -> None:
    report = _audit(
        ("coverage", None, "source `orders` feeds the model but has no data contract: rows pass"),
        ("coverage", None, "no fallback is declared: when the model fails, requests fail"),
    )
    titles = [c.blocker.title for c in audit_checks(report) if c.blocker]
    assert titles == [
        "coverage: source `orders` feeds the model but has no data contract",
        "coverage: no fallback is declared",
    ]
