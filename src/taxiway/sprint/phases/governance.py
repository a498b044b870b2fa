"""The deployment phase's judgements, shared with ``taxiway models promote`` through
:mod:`taxiway.sprint.gates`: an owner and an action declared, the sign-offs recorded, and the
monitoring and rollout gates judged on what was exercised, never on what was declared.
"""

from __future__ import annotations

from typing import Any

from taxiway.spec.project import Project
from taxiway.sprint.approvals import SignOff
from taxiway.sprint.outcome import Blocker, Check, Exercised, blocker

NOT_EXERCISED = "declared, not exercised"
"""The evidence of a gate whose section the spec declares but that nothing ran in the sprint."""

MONITOR_NOT_BUILT = (
    "the recommender's monitor runs after the load test "
    "(taxiway.sprint.recommend_watch.monitor_recommender)"
)
"""The placeholder an integration phase may show before the recommender's monitor step
replaces it (:mod:`taxiway.sprint.recommend_watch`); kept for its importers."""


def monitoring_check(
    project: Project, observed: Exercised | None = None
) -> tuple[Check, dict[str, Any]]:
    """The monitoring gate, and what it used (``facts.monitoring`` of report.json).

    ``observed`` is what the monitor reports it saw during the sprint (a classifier's
    :mod:`taxiway.sprint.watch`, a recommender's :mod:`taxiway.sprint.recommend_watch`);
    without it (outside a sprint, or when nothing ran it) a declared section is ``warn``:
    declared, not exercised.

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
        else f"drift: {section.drift}, alert above {section.threshold_text}",
        missing=blocker("deployment", "technical", "no monitoring is declared",
                        evidence=f"{project.spec_path} has no `monitoring:`",
                        fix="add `monitoring: {drift: psi}` to the spec",
                        kind="spec_line"),
        failed="the monitor found the service unfit to run unwatched",
        nothing_ran="no monitor watched the service during the sprint",
    )  # fmt: skip


def rollout_check(
    project: Project, observed: Exercised | None = None
) -> tuple[Check, dict[str, Any]]:
    """The rollout gate, and what it used (``facts.rollout`` of report.json).

    ``observed`` is what the rollout controller reports it did during the sprint (the
    deployment phase starts it, for a classifier as for a recommender); without it a
    declared plan is ``warn``: declared, not exercised.
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
