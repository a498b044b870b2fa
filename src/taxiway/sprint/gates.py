"""The promotion gate: what must hold before a model version becomes the production one.

One definition for both ways a version reaches production, the sprint's deployment phase and
``taxiway models promote``. A version may be promoted when none of these checks has a
critical-path blocker:

- the **handoff audit** of that version (:func:`~taxiway.sprint.phases.audit_checks`):
  leakage, prediction-time availability, latency, skew (a recommender's: leakage, filters
  parity, coverage, latency, :func:`taxiway.recommend.audit.run_recommend_audit`); its coverage findings about the owner
  and the action are left to the governance checks, so each blocker is listed once;
- the **deployment phase's own checks** (:func:`deployment_checks`): an owner and an action
  declared, every sign-off ``governance.approvals`` requires recorded in the approvals log
  (:func:`~taxiway.sprint.phases.governance_checks`), monitoring and a rollout plan declared
  (:func:`~taxiway.sprint.phases.monitoring_check`,
  :func:`~taxiway.sprint.phases.rollout_check`; outside a sprint nothing exercises them, so a
  declared section is a warning and a missing one a blocker, as in the sprint), for a
  classifier as for a recommender.

The sprint also stops on what only it observes (a source it cannot read, the service under
load, the fault drill); ``models promote`` cannot see those. A promotion forced past the gate is recorded by
:func:`~taxiway.sprint.approvals.record_override` in the hash-chained approvals
log: who, why, and each blocker overridden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taxiway.errors import TaxiwayError
from taxiway.models.audit import AuditReport, run_audit
from taxiway.models.registry import ModelVersion
from taxiway.recommend.audit import run_recommend_audit
from taxiway.spec.project import Project
from taxiway.sprint.approvals import SignOff, sign_offs
from taxiway.sprint.outcome import Blocker, Check, Exercised, blocker
from taxiway.sprint.phases.governance import (
    governance_checks,
    monitoring_check,
    rollout_check,
)
from taxiway.sprint.phases.model_development import audit_checks

__all__ = ["PromotionGate", "critical_blockers", "deployment_checks", "promotion_gate"]


def deployment_checks(
    project: Project, signed: list[SignOff], exercised: dict[str, Exercised] | None = None
) -> tuple[list[Check], dict[str, dict[str, Any]]]:
    """The deployment phase's checks (owner, action, sign-offs, monitoring, rollout), and what
    the monitoring and rollout gates used (``facts.monitoring`` / ``facts.rollout`` of a
    sprint's report.json), keyed by ``monitoring`` and ``rollout``.

    ``exercised`` holds what the monitor (``monitoring``) and the rollout controller
    (``rollout``) observed while the sprint ran them; a gate missing from it is reported as
    declared, not exercised (a warning, not a blocker), as it always is outside a sprint.

    >>> from pathlib import Path
    >>> from taxiway.spec.loader import load_spec_text
    >>> spec = load_spec_text("name: demo\\nowner: growth-team\\nmonitoring: {drift: psi}")
    >>> checks, used = deployment_checks(Project(spec, Path("taxiway.yaml")), [])
    >>> [b.title for b in critical_blockers(checks)]
    ['no one acts on the predictions', 'no gradual rollout is planned']
    >>> used["monitoring"]["evidence"]
    'declared, not exercised'
    """
    checks = governance_checks(project, signed)
    used: dict[str, dict[str, Any]] = {}
    for key, gate in (("monitoring", monitoring_check), ("rollout", rollout_check)):
        check, facts = gate(project, (exercised or {}).get(key))
        checks.append(check)
        used[key] = facts
    return checks, used


def critical_blockers(checks: list[Check]) -> list[Blocker]:
    """The critical-path blockers of ``checks``, in order: what stops a promotion."""
    return [c.blocker for c in checks if c.blocker is not None and c.blocker.critical_path]


@dataclass(frozen=True)
class PromotionGate:
    """The checks one version faced before promotion, and the audit they read."""

    version: ModelVersion
    checks: list[Check]
    audit: AuditReport | None
    """None when the audit could not run (that is then a blocker among the checks)."""

    @property
    def blockers(self) -> list[Blocker]:
        """What stops the promotion (empty: it may go ahead)."""
        return critical_blockers(self.checks)

    @property
    def warnings(self) -> list[Check]:
        """Checks that do not stop it but that someone should read."""
        return [c for c in self.checks if c.status == "warn"]


def promotion_gate(project: Project, version: ModelVersion, *, sample: int = 100) -> PromotionGate:
    """Audit ``version`` now and check the deployment phase's gates; see the module docstring.

    An audit that cannot run (a source unreadable, the artifacts gone) is a blocker naming the
    error and its fix, not an exception: the gate still lists everything else.
    """
    audit: AuditReport | None = None
    try:
        audit = (
            run_recommend_audit(project, version, sample=sample)
            if project.spec.recommend is not None
            else run_audit(project, version, sample=sample)
        )
        checks = audit_checks(audit)
    except TaxiwayError as error:
        checks = [
            Check(
                "handoff audit",
                "fail",
                error.message,
                blocker=blocker(
                    "model_development",
                    "technical",
                    f"the handoff audit of v{version.version} could not run",
                    evidence=error.message,
                    fix=error.fix
                    or f"run `taxiway audit --model {version.version}` and fix what it reports",
                    kind="code",
                ),
            )
        ]
    deployment, _ = deployment_checks(project, sign_offs(project))
    return PromotionGate(version, checks + deployment, audit)
