"""Turning what the lower layers found into checks and blockers, one function per source of
findings: the data check, training, the handoff audit, governance.

Each blocker says what kind of problem it is and how long its fix takes, by rule:

=========================  ================  =========  ======================================
found                      category          estimate   why
=========================  ================  =========  ======================================
a missing privilege        organizational    days       someone must grant it; the statement
                                                        is known
a source not reachable     technical         days       network, credentials or a path
a contract rule blocking   technical         weeks      the producer fixes its data or the
                                                        contract is renegotiated
a leaking input            technical         days       drop or re-time the input, retrain
an input not available at  capability        weeks      a source or a request field has to
prediction time                                         be built
no lift over the baseline  capability        months     better data or a different framing;
                                                        or ship the baseline rule
no owner / no action       organizational    days       a decision, not engineering
a missing sign-off         organizational    days       the role signs with `taxiway approve`
=========================  ================  =========  ======================================

Everything that stops the candidate from serving correctly is on the critical path; warnings
are checks with status ``warn`` and no blocker.
"""

from __future__ import annotations

from typing import Any

from taxiway.data.check import CheckReport
from taxiway.data.findings import Finding
from taxiway.models.audit.coverage import NO_ACTION, NO_OWNER
from taxiway.models.audit.findings import AuditReport
from taxiway.models.training import TrainResult
from taxiway.spec.project import Project
from taxiway.sprint.approvals import SignOff
from taxiway.sprint.outcome import Blocker, Category, Check, Estimate

__all__ = ["audit_checks", "data_checks", "governance_checks", "training_checks"]


def data_checks(report: CheckReport) -> list[Check]:
    """One check per source (and one for spec-level findings), blockers for ``block``s."""
    checks: list[Check] = []
    if report.findings:
        checks.append(_from_findings("spec", report.findings, 0.0, {}))
    for source in report.sources:
        data = {"rows": source.rows, "kind": source.kind, "location": source.location}
        if source.validation is not None:
            data["quarantined_rows"] = source.validation.quarantined_rows
        checks.append(_from_findings(f"source {source.name}", source.findings, source.duration_s,
                                     data))  # fmt: skip
    return checks


def _from_findings(
    name: str, findings: list[Finding], duration_s: float, data: dict[str, Any]
) -> Check:
    blocking = [f for f in findings if f.blocks]
    noted = [f for f in findings if f.severity in ("warn", "quarantine")]
    if not blocking:
        detail = "; ".join(f.message for f in noted[:3]) or "reachable, readable, contract passed"
        return Check(name, "warn" if noted else "pass", detail, duration_s, data=data)
    first = blocking[0]
    category, estimate = _classify_finding(first)
    evidence = "; ".join(f"{f.rule}: {f.message}" for f in blocking[:5])
    if len(blocking) > 5:
        evidence += f"; and {len(blocking) - 5} more"
    fixes = [f.fix for f in blocking if f.fix]
    return Check(
        name,
        "fail",
        first.message,
        duration_s,
        blocker=Blocker(
            "data_access",
            category,
            True,
            first.message
            if f"`{first.source}`" in first.message
            else f"{first.source}: {first.message}",
            evidence=evidence,
            fix=" ".join(dict.fromkeys(fixes)) or f"fix {first.rule} on {first.source}",
            estimate=estimate,
        ),
        data=data,
    )


def _classify_finding(finding: Finding) -> tuple[Category, Estimate]:
    rule = finding.rule
    if rule.startswith("access.") and (finding.fix or "").lstrip().upper().startswith("GRANT"):
        return "organizational", "days"  # someone with the right must grant it
    if rule in ("access.connect", "access.table", "source.read") or rule.startswith("spec."):
        return "technical", "days"
    return "technical", "weeks"  # a contract rule: the data itself must change


def training_checks(result: TrainResult) -> list[Check]:
    """The training set and the model against the baseline."""
    v = result.version
    metric = v.metrics.get("metric")
    model, baseline = v.metrics.get("model") or {}, v.metrics.get("baseline") or {}
    rows = v.training.get("rows")
    checks = [
        Check(
            "training set",
            "pass",
            f"{rows:,} rows, point in time{' (reused: unchanged sources)' if result.reused_training_set else ''}"
            if isinstance(rows, int)
            else "built",
            result.timings.get("training_set", 0.0),
            data={"rows": rows, "reused": result.reused_training_set},
        )
    ]
    ours, theirs = model.get(metric), baseline.get(metric)
    detail = f"{metric}: model {_fmt(ours)} vs baseline {_fmt(theirs)} ({v.algorithm})"
    if result.reused_model:
        detail += f"; v{v.version} reused: trained from these same inputs"
    data = {"version": v.version, "algorithm": v.algorithm, "metric": metric,
            "model": ours, "baseline": theirs, "beats_baseline": result.beats_baseline,
            "baseline_description": v.metrics.get("baseline_description"),
            "reused": result.reused_model}  # fmt: skip
    if result.beats_baseline:
        checks.append(Check("model beats the baseline", "pass", detail, 0.0, data=data))
    else:
        checks.append(
            Check(
                "model beats the baseline",
                "fail",
                detail,
                0.0,
                blocker=Blocker(
                    "model_development",
                    "capability",
                    True,
                    "the model does not beat the baseline",
                    evidence=detail + f"; baseline: {v.metrics.get('baseline_description')}",
                    fix="ship the baseline rule itself (no model needed), or find inputs that "
                    "carry signal the baseline lacks (new sources, longer history), then "
                    "`taxiway train` again",
                    estimate="months",
                ),
                data=data,
            )
        )
    return checks


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


_AUDIT_CLASS: dict[str, tuple[Category, Estimate]] = {
    "leakage": ("technical", "days"),
    "availability": ("capability", "weeks"),
    "latency": ("technical", "weeks"),
    "skew": ("technical", "days"),
    "coverage": ("organizational", "days"),
}


def audit_checks(report: AuditReport) -> list[Check]:
    """One check per audit check; each blocker finding becomes a blocker."""
    checks: list[Check] = []
    measured = report.measured
    for name in _AUDIT_CLASS:
        # the deployment phase checks the owner and the action: each blocker is reported once
        findings = [
            f
            for f in report.findings
            if f.check == name and not f.evidence.startswith((NO_OWNER, NO_ACTION))
        ]
        severities = {f.severity for f in findings}
        status = (
            "blocker"
            if "blocker" in severities
            else "warning"
            if "warning" in severities
            else report.checks.get(name, "passed")
        )
        if status == "blocker":
            category, estimate = _AUDIT_CLASS[name]
            for finding in (f for f in findings if f.severity == "blocker"):
                checks.append(
                    Check(
                        f"audit {name}" + (f" ({finding.feature})" if finding.feature else ""),
                        "fail",
                        finding.evidence,
                        blocker=Blocker(
                            "model_development",
                            category,
                            True,
                            f"{name}: {finding.feature or 'the model'}",
                            evidence=finding.evidence,
                            fix=finding.fix,
                            estimate=estimate,
                        ),
                    )
                )
        elif status == "warning":
            detail = "; ".join(f.evidence for f in findings)[:300]
            checks.append(Check(f"audit {name}", "warn", detail))
        elif status == "skipped":
            checks.append(Check(f"audit {name}", "skip", "not run"))
        else:
            checks.append(Check(f"audit {name}", "pass", _measured(name, measured)))
    return checks


def _measured(name: str, measured: dict[str, Any]) -> str:
    value = measured.get(name)
    if isinstance(value, dict):
        parts = [f"{k} {v}" for k, v in value.items() if isinstance(v, int | float | str)][:4]
        return ", ".join(parts)
    return "passed"


def governance_checks(project: Project, signed: list[SignOff]) -> list[Check]:
    """Owner, action, monitoring and rollout declared; every required sign-off recorded."""
    spec = project.spec
    where = project.spec_path
    checks: list[Check] = []

    def require(name: str, ok: bool, detail: str, blocker: Blocker) -> None:
        checks.append(
            Check(name, "pass" if ok else "fail", detail, blocker=None if ok else blocker)
        )

    require(
        "owner declared",
        bool(spec.owner),
        f"owner: {spec.owner}" if spec.owner else "nobody owns this model's predictions",
        Blocker("deployment", "organizational", True, "nobody owns the predictions",
                evidence=f"{where} has no `owner:`",
                fix="name the team accountable for the model in production: "
                    "add `owner: <team>` to the spec",
                estimate="days"),
    )  # fmt: skip
    action = spec.governance.action if spec.governance else None
    require(
        "action declared",
        bool(action),
        "who acts on each prediction is declared" if action else "no one acts on the predictions",
        Blocker("deployment", "organizational", True, "no one acts on the predictions",
                evidence=f"{where} has no `governance.action:`",
                fix="write down who does what with each prediction (e.g. 'the retention team "
                    "sends an offer above 0.7') under `governance.action:`",
                estimate="days"),
    )  # fmt: skip
    require(
        "monitoring declared",
        spec.monitoring is not None,
        f"drift: {spec.monitoring.drift}, alert above {spec.monitoring.alert_threshold}"
        if spec.monitoring
        else "no monitoring declared",
        Blocker("deployment", "technical", True, "no monitoring is declared",
                evidence=f"{where} has no `monitoring:`",
                fix="add `monitoring: {drift: psi, alert_threshold: 0.2}` to the spec",
                estimate="days"),
    )  # fmt: skip
    require(
        "rollout plan declared",
        spec.rollout is not None,
        f"control: {spec.rollout.control}, steps {spec.rollout.steps}"
        if spec.rollout
        else "no rollout plan declared",
        Blocker("deployment", "technical", True, "no gradual rollout is planned",
                evidence=f"{where} has no `rollout:`",
                fix="add `rollout: {control: baseline, steps: [1, 5, 25, 50, 100], "
                    "metric: <outcome>}` to the spec",
                estimate="days"),
    )  # fmt: skip
    required = spec.governance.approvals if spec.governance else []
    for sign_off in signed:
        role, approval = sign_off.role, sign_off.approval
        if approval is not None:
            detail = f"signed by {approval.by} at {approval.at}"
            if sign_off.status == "earlier_spec":
                detail += " (for an earlier version of the spec: review the changes)"
                checks.append(Check(f"sign-off {role}", "warn", detail))
            else:
                checks.append(Check(f"sign-off {role}", "pass", detail))
            continue
        checks.append(
            Check(
                f"sign-off {role}",
                "fail",
                f"no {role} sign-off recorded",
                blocker=Blocker(
                    "deployment",
                    "organizational",
                    True,
                    f"the {role} sign-off is missing",
                    evidence=f"governance.approvals requires {role}; the audit log has none",
                    fix=f"the {role} reviewer runs `taxiway approve -f {where} --role {role} "
                    "--by <name>` after review",
                    estimate="days",
                ),
            )
        )
    if not required:
        checks.append(
            Check(
                "sign-offs required",
                "warn",
                "governance.approvals lists no role: nobody signs off before production",
            )
        )
    return checks
