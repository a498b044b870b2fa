"""Turning what the lower layers found into checks and blockers, one function per source of
findings: the data check, training, the handoff audit, governance.

Each blocker says what kind of problem it is and what kind of fix it needs; the estimate and
who acts come from the kind of fix (:func:`taxiway.sprint.outcome.effort`), never from here:

==========================  ================  ==========  =================================
found                       category          fix kind    estimate, who acts
==========================  ================  ==========  =================================
a missing privilege         organizational    grant       hours, the DBA
an unset environment        technical         setting     minutes, whoever runs the sprint
variable
a source not reachable      technical         code        days, the source's administrator
a spec or contract file     technical         spec_line   minutes, the model's team
a contract rule blocking    technical         data_fix    weeks, the source's producer
a leaking input             technical         retrain     the measured training time
an input not available at   capability        new_source  days, data engineering
prediction time
no lift over the baseline   capability        new_signal  months, the model's team
no owner / no action        organizational    spec_line   minutes, the model's sponsor
a missing sign-off          organizational    sign_off    days, the role's reviewer
a declared gate missing     technical         spec_line   minutes, the model's team
==========================  ================  ==========  =================================

Everything that stops the candidate from serving correctly is on the critical path; warnings
are checks with status ``warn`` and no blocker.

The gates judge what happened, never what was declared:

- **latency**: the load test's p99 as its clients measured it (the whole request, as a user
  sees it), not the service's own ``latency_ms``; both are shown.
- **prediction log**: the records the load test's answers left in the durable log, counted
  by reading it, against the requests that were answered.
- **monitoring** and **rollout**: ``pass`` only on what the monitor or the rollout controller
  reports it observed during the sprint (:class:`~taxiway.sprint.outcome.Exercised`). A
  declared section that nothing ran is ``warn`` with the evidence ``declared, not
  exercised``; a missing section is a blocker. ``warn`` has no blocker, so it does not stop
  the promotion: the debrief says plainly that the section was not exercised.
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
from taxiway.sprint.outcome import Blocker, Category, Check, Exercised, FixKind, blocker

__all__ = [
    "NOT_EXERCISED",
    "audit_checks",
    "data_checks",
    "governance_checks",
    "latency_check",
    "monitoring_check",
    "prediction_log_check",
    "rollout_check",
    "training_checks",
]

NOT_EXERCISED = "declared, not exercised"
"""The evidence of a gate whose section the spec declares but that nothing ran in the sprint."""


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
    category, kind, who = _classify_finding(first)
    evidence = "; ".join(f"{f.rule}: {f.message}" for f in blocking[:5])
    if len(blocking) > 5:
        evidence += f"; and {len(blocking) - 5} more"
    fixes = [f.fix for f in blocking if f.fix]
    return Check(
        name,
        "fail",
        first.message,
        duration_s,
        blocker=blocker(
            "data_access",
            category,
            first.message
            if f"`{first.source}`" in first.message
            else f"{first.source}: {first.message}",
            evidence=evidence,
            fix=" ".join(dict.fromkeys(fixes)) or f"fix {first.rule} on {first.source}",
            kind=kind,
            who=who,
        ),
        data=data,
    )


def _classify_finding(finding: Finding) -> tuple[Category, FixKind, str | None]:
    """The category, the kind of fix and who acts, from the finding's rule and its fix."""
    rule, fix = finding.rule, (finding.fix or "").lstrip()
    if rule.startswith("access.") and fix.upper().startswith("GRANT"):
        return "organizational", "grant", None  # someone with the right must grant it
    if fix.startswith("export "):
        return "technical", "setting", None  # a variable the run lacks
    if rule.startswith(("spec.", "contract.")):
        return "technical", "spec_line", None
    if rule in ("access.connect", "access.table", "source.read") or rule.startswith("access."):
        return "technical", "code", f"whoever runs source `{finding.source}`"
    return "technical", "data_fix", f"the producer of source `{finding.source}`"


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
    described = v.metrics.get("baseline_description")
    if described:  # the terminal, report.md and report.json all name the bar that was used
        detail += f"; baseline: {described}"
    if result.reused_model:
        detail += f"; v{v.version} reused: trained from these same inputs"
    data = {"version": v.version, "algorithm": v.algorithm, "metric": metric,
            "model": ours, "baseline": theirs, "beats_baseline": result.beats_baseline,
            "baseline_description": described, "reused": result.reused_model}  # fmt: skip
    if result.beats_baseline:
        checks.append(Check("model beats the baseline", "pass", detail, 0.0, data=data))
    else:
        checks.append(
            Check(
                "model beats the baseline",
                "fail",
                detail,
                0.0,
                blocker=blocker(
                    "model_development",
                    "capability",
                    "the model does not beat the baseline",
                    evidence=detail,
                    fix="ship the baseline rule itself (no model needed), or find inputs that "
                    "carry signal the baseline lacks (new sources, longer history), then "
                    "`taxiway train` again",
                    kind="new_signal",
                ),
                data=data,
            )
        )
    return checks


def latency_check(summary: dict[str, Any], version: int) -> Check:
    """The load test against the latency budget: every request answered, and the p99 its
    clients measured (``client_p99_ms``) within ``budget_ms``.

    The service's own ``latency_ms`` starts when the handler has the request and stops before
    the answer is written: the time in the socket, the queue and the event loop is not in it.
    A user waits for all of it, so the clients' figure is the gate; the detail shows both.

    >>> s = {"requests": 100, "answered": 100, "errors": 0, "rps": 50.0, "budget_ms": 50,
    ...      "p50_ms": 2.0, "p99_ms": 4.0, "client_p50_ms": 30.0, "client_p99_ms": 80.0}
    >>> c = latency_check(s, 3)
    >>> c.status, c.blocker.title if c.blocker else None
    ('fail', 'clients waited past the latency budget under load')
    >>> latency_check({**s, "client_p99_ms": 45.0}, 3).status
    'pass'
    """
    budget = float(summary["budget_ms"])
    client, server = float(summary["client_p99_ms"]), float(summary["p99_ms"])
    answered = int(summary.get("answered", summary["requests"] - summary["errors"]))
    detail = (
        f"{summary['requests']:,} requests at {summary['rps']:,.0f}/s: clients saw p50 "
        f"{summary['client_p50_ms']:.1f} ms, p99 {client:.1f} ms (the gate: the whole "
        f"request); the service's own latency_ms p99 {server:.1f} ms; budget {budget:g} ms, "
        f"{summary['errors']} errors"
    )
    if answered and summary["errors"] == 0 and client <= budget:
        return Check("load test within the latency budget", "pass", detail, data=summary)
    kind: FixKind = "code"
    if client > budget and server <= budget:
        title = "clients waited past the latency budget under load"
        fix = (
            f"the service's own p99 ({server:.1f} ms) is within budget, so the time goes "
            "before or after the handler (queueing, the event loop, the connection): raise "
            f"--workers or lower serving.max_in_flight for `taxiway serve --model {version}`, "
            "and measure with bench/serving.py"
        )
    elif client > budget:
        kind = "tuning"
        title = "the service misses its latency budget under load"
        fix = (
            f"profile `taxiway serve --model {version}` under load (bench/serving.py); raise "
            "--workers, move the online store closer, or choose a faster model form"
        )
    else:
        title = "the service fails requests under load"
        fix = (
            f"run `taxiway serve --model {version}` under load (bench/serving.py) and read "
            "its output for the failed requests"
        )
    return Check(
        "load test within the latency budget",
        "fail",
        detail,
        data=summary,
        blocker=blocker("integration", "technical", title, evidence=detail, fix=fix, kind=kind),
    )


def prediction_log_check(found: dict[str, Any], log: str) -> Check:
    """Whether every answer of the load test is in the durable prediction log.

    ``found`` holds ``answered`` (the load test's successful requests), ``records_written``
    (the records the log gained while it ran, counted by reading the log) and
    ``refused_unlogged`` (requests the service refused because the log could not be written).
    ``log`` names the service's output, for the fix.

    >>> prediction_log_check({"answered": 10, "records_written": 10, "refused_unlogged": 0,
    ...                       "folder": "state/predictions"}, "serve.log").status
    'pass'
    >>> c = prediction_log_check({"answered": 10, "records_written": 7, "refused_unlogged": 0,
    ...                           "folder": "p"}, "serve.log")
    >>> c.status, c.detail
    ('fail', 'only 7 records in p for 10 answered requests: 3 answers left unlogged')
    """
    name = "prediction log holds the load test's answers"
    answered, written = int(found["answered"]), int(found["records_written"])
    refused, folder = int(found["refused_unlogged"]), found["folder"]
    if refused:
        detail = (
            f"{refused:,} requests refused (503): the prediction log could not be written; "
            f"{written:,} records in {folder} for {answered:,} answered requests"
        )
        title = "the service cannot write its prediction log"
        fix = f"make {folder} writable with free space (serving.log.path); see {log}"
        kind: FixKind = "setting"
    elif not answered:
        return Check(name, "skip", "the load test answered no request, so nothing was logged")
    elif written < answered:
        detail = (
            f"only {written:,} records in {folder} for {answered:,} answered requests: "
            f"{answered - written:,} answers left unlogged"
        )
        title = "answered predictions are missing from the prediction log"
        fix = f"find why answers leave before their record is written; see {log}"
        kind = "code"
    else:
        detail = f"{written:,} records written to {folder} for {answered:,} answered requests"
        return Check(name, "pass", detail, data=found)
    return Check(
        name,
        "fail",
        detail,
        data=found,
        blocker=blocker("integration", "technical", title, evidence=detail, fix=fix, kind=kind),
    )


def monitoring_check(
    project: Project, observed: Exercised | None = None
) -> tuple[Check, dict[str, Any]]:
    """The monitoring gate, and what it used (``facts.monitoring`` of report.json).

    ``observed`` is what the monitor reports it saw during the sprint; none runs yet, so
    a declared section is ``warn``: declared, not exercised.

    >>> from pathlib import Path
    >>> from taxiway.spec.loader import load_spec_text
    >>> spec = load_spec_text("name: demo\\nmonitoring: {drift: psi}")
    >>> check, facts = monitoring_check(Project(spec, Path("taxiway.yaml")))
    >>> check.status, facts["status"], facts["evidence"], facts["observed"]
    ('warn', 'warn', 'declared, not exercised', None)
    >>> monitoring_check(Project(spec, Path("t.yaml")), Exercised(True, "drift alert fired"))[0].status
    'pass'
    """
    section = project.spec.monitoring
    return _exercised(
        "monitoring",
        None if section is None else section.model_dump(mode="json"),
        observed,
        planned=None
        if section is None
        else f"drift: {section.drift}, alert above {section.alert_threshold:g}",
        missing=blocker("deployment", "technical", "no monitoring is declared",
                        evidence=f"{project.spec_path} has no `monitoring:`",
                        fix="add `monitoring: {drift: psi, alert_threshold: 0.2}` to the spec",
                        kind="spec_line"),
        failed="the monitor found the service unfit to run unwatched",
        nothing_ran="no monitor watched the service during the sprint",
    )  # fmt: skip


def rollout_check(
    project: Project, observed: Exercised | None = None
) -> tuple[Check, dict[str, Any]]:
    """The rollout gate, and what it used (``facts.rollout`` of report.json).

    ``observed`` is what the rollout controller reports it did during the sprint; none runs
    yet, so a declared plan is ``warn``: declared, not exercised.
    """
    section = project.spec.rollout
    return _exercised(
        "gradual rollout",
        None if section is None else section.model_dump(mode="json"),
        observed,
        planned=None
        if section is None
        else f"control: {section.control}, steps {', '.join(f'{s:g}%' for s in section.steps)}",
        missing=blocker("deployment", "technical", "no gradual rollout is planned",
                        evidence=f"{project.spec_path} has no `rollout:`",
                        fix="add `rollout: {control: baseline, steps: [1, 5, 25, 50, 100], "
                            "metric: <outcome>}` to the spec",
                        kind="spec_line"),
        failed="the gradual rollout rolled back",
        nothing_ran="no rollout controller moved traffic during the sprint",
    )  # fmt: skip


def _exercised(
    name: str,
    declared: dict[str, Any] | None,
    observed: Exercised | None,
    *,
    planned: str | None,
    missing: Blocker,
    failed: str,
    nothing_ran: str,
) -> tuple[Check, dict[str, Any]]:
    facts: dict[str, Any] = {
        "declared": declared,
        "observed": None if observed is None else observed.as_dict(),
    }
    if declared is None:
        check = Check(name, "fail", missing.title, blocker=missing)
        facts.update(status="fail", evidence="not declared")
    elif observed is None:
        check = Check(name, "warn", f"{NOT_EXERCISED} ({planned}): {nothing_ran}")
        facts.update(status="warn", evidence=NOT_EXERCISED)
    elif observed.ok:
        check = Check(name, "pass", observed.evidence, data=observed.data)
        facts.update(status="pass", evidence=observed.evidence)
    else:
        found = blocker("deployment", "technical", failed, evidence=observed.evidence,
                        fix=f"read the {name} evidence, fix the cause, and run the sprint "
                            "again", kind="code")  # fmt: skip
        check = Check(name, "fail", observed.evidence, data=observed.data, blocker=found)
        facts.update(status="fail", evidence=observed.evidence)
    return check, facts


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


_AUDIT_CLASS: dict[str, tuple[Category, FixKind]] = {
    "leakage": ("technical", "retrain"),
    "availability": ("capability", "new_source"),
    "latency": ("technical", "tuning"),
    "skew": ("technical", "code"),
    "coverage": ("organizational", "spec_line"),
}
_GOVERNANCE = {NO_OWNER: "owner declared", NO_ACTION: "action declared"}


def audit_checks(report: AuditReport, training_s: float | None = None) -> list[Check]:
    """One check per audit check (one per blocking finding); each blocker finding becomes a
    blocker, with the status the audit gave, so the phase table and the audit section agree.

    The missing owner and action are the deployment phase's blockers: their audit check still
    fails, with no second blocker. ``training_s`` is the training time the sprint measured:
    fixing a leak means retraining, so it is that fix's estimate.
    """
    checks: list[Check] = []
    measured = report.measured
    for name in _AUDIT_CLASS:
        findings = [f for f in report.findings if f.check == name]
        # the deployment phase checks the owner and the action: each blocker is reported once
        elsewhere = [f for f in findings if f.evidence.startswith(tuple(_GOVERNANCE))]
        own = [f for f in findings if f not in elsewhere]
        blocking = [f for f in own if f.severity == "blocker"]
        category, kind = _AUDIT_CLASS[name]
        for finding in blocking:
            checks.append(
                Check(
                    f"audit {name}" + (f" ({finding.feature})" if finding.feature else ""),
                    "fail",
                    finding.evidence,
                    blocker=blocker(
                        "model_development",
                        category,
                        f"{name}: {finding.feature or 'the model'}",
                        evidence=finding.evidence,
                        fix=finding.fix,
                        kind=kind,
                        measured_s=training_s if kind == "retrain" else None,
                    ),
                )
            )
        moved = [f for f in elsewhere if f.severity == "blocker"]
        if moved:
            where = ", ".join(
                f"'{check}'" for prefix, check in _GOVERNANCE.items()
                if any(f.evidence.startswith(prefix) for f in moved)
            )  # fmt: skip
            detail = "; ".join(f.evidence for f in moved)
            checks.append(
                Check(
                    f"audit {name}", "fail", f"{detail} (its blocker is under deployment: {where})"
                )
            )
        if blocking or moved:
            continue
        warned = [f for f in findings if f.severity == "warning"]
        if warned:
            checks.append(
                Check(f"audit {name}", "warn", "; ".join(f.evidence for f in warned)[:300])
            )
        elif report.checks.get(name) in ("skipped", "not applicable"):
            ran = report.checks[name]
            checks.append(Check(f"audit {name}", "skip", "not run" if ran == "skipped" else ran))
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
    """Owner and action declared; every required sign-off recorded."""
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
        blocker("deployment", "organizational", "nobody owns the predictions",
                evidence=f"{where} has no `owner:`",
                fix="name the team accountable for the model in production: "
                    "add `owner: <team>` to the spec",
                kind="spec_line", who="the model's sponsor"),
    )  # fmt: skip
    action = spec.governance.action if spec.governance else None
    require(
        "action declared",
        bool(action),
        "who acts on each prediction is declared" if action else "no one acts on the predictions",
        blocker("deployment", "organizational", "no one acts on the predictions",
                evidence=f"{where} has no `governance.action:`",
                fix="write down who does what with each prediction (e.g. 'the retention team "
                    "sends an offer above 0.7') under `governance.action:`",
                kind="spec_line", who="the model's sponsor"),
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
                blocker=blocker(
                    "deployment",
                    "organizational",
                    f"the {role} sign-off is missing",
                    evidence=f"governance.approvals requires {role}; the audit log has none",
                    fix=f"the {role} reviewer runs `taxiway approve -f {where} --role {role} "
                    "--by <name>` after review",
                    kind="sign_off",
                    who=f"the {role} reviewer",
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
