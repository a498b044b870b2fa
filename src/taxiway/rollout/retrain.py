"""`taxiway retrain`: one run of the loop, from the sources to the rollout.

:func:`~taxiway.models.retrain.retrain_candidate` runs the gates up to a registered, audited
candidate; this module, a layer above, then starts its rollout against production when the
spec's ``retrain.auto_rollout`` is on, the spec has a ``rollout:`` plan and no sign-off is
required. A sign-off is required when ``governance.approvals`` lists a role, unless
``retrain.signoff`` is set, the retrain is routine
(:func:`~taxiway.models.retrain_signoff.decide`), every role has a standing sign-off, and the
caller passes the approvals log (``signoffs``, a :class:`StandingSignOffs`: the sprint layer's
:class:`~taxiway.sprint.approvals.ApprovalsLog`); the routine retrain is then recorded in that log
with the sign-offs it reuses. Otherwise the run stops at ``candidate``.

When the run ends, whatever gate stopped it, its result is recorded in the registry's database
(:func:`record_run`, :mod:`taxiway.models.retrain_runs`), where `taxiway models history` on any
host reads it; a run killed before its end records nothing.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Protocol

from taxiway.models.registry import open_registry
from taxiway.models.retrain import BY, Progress, RetrainResult, retrain_candidate, retrain_policy
from taxiway.models.retrain_runs import read_retrain_runs, record_retrain_run
from taxiway.models.retrain_signoff import SignoffDecision, decide, version_changes
from taxiway.rollout.controller import Controller
from taxiway.spec.project import Project

__all__ = [
    "StandingSignOffs",
    "read_runs",
    "record_run",
    "run_retrain",
    "signoff_decision",
]


class StandingSignOffs(Protocol):
    """The approvals log, as a routine retrain reads and extends it (a layer above)."""

    def standing(self, project: Project) -> dict[str, str | None]:
        """Each role ``governance.approvals`` lists: its newest sign-off, described, or None."""
        ...

    def record_routine(self, project: Project, version: int, note: str) -> None:
        """Append a ``routine_retrain`` record for ``version`` with ``note``."""
        ...


def run_retrain(
    project: Project,
    *,
    as_of: datetime | None = None,
    trigger: str = "cadence",
    progress: Progress | None = None,
    signoffs: StandingSignOffs | None = None,
) -> RetrainResult:
    """One retrain of ``project``'s model; the result says which gate stopped it.

    ``signoffs`` (the approvals log) lets a routine retrain reuse the standing sign-offs."""
    began = time.perf_counter()
    result = _run(project, as_of, trigger, progress or (lambda _: None), signoffs)
    result.lap("total", began)  # with the sign-off and the rollout's start
    record_run(project, result)
    return result


def record_run(project: Project, result: RetrainResult) -> None:
    """Record the finished run ``result`` in the registry's database (one transaction)."""
    record_retrain_run(project, uuid.uuid4().hex, result.as_dict())


def read_runs(project: Project) -> list[dict[str, Any]]:
    """Every finished run of ``project``'s model (``RetrainResult.as_dict``), from every host
    sharing its registry, oldest first."""
    return read_retrain_runs(project)


def _run(
    project: Project,
    as_of: datetime | None,
    trigger: str,
    say: Progress,
    signoffs: StandingSignOffs | None,
) -> RetrainResult:
    policy = retrain_policy(project)
    result = retrain_candidate(project, as_of=as_of, trigger=trigger, progress=say)
    if result.gate != "candidate":
        return result
    spec = project.spec
    approvals = spec.governance.approvals if spec.governance is not None else []
    if not policy.auto_rollout:
        result.reason += "; retrain.auto_rollout is off: start its rollout by hand"
        return result
    if spec.rollout is None:
        result.reason += "; the spec has no `rollout:` plan to start"
        return result
    if approvals:
        why = _routine(project, result, signoffs)
        if why is not None:
            result.reason += (
                f"; a sign-off is required ({', '.join(approvals)}): {why}: `taxiway approve`, "
                "then `taxiway rollout start`"
            )
            return result
    say(f"starting the rollout of v{result.candidate}")
    began = time.perf_counter()
    with Controller(project, by=BY) as controller:
        state = controller.start(candidate=result.candidate)
    result.lap("rollout", began)
    result.gate = "rollout_started"
    result.rollout = {"id": state.id, "control": state.control, "candidate": state.candidate}
    result.reason += f"; rollout {state.id} started against {_control(state.control)}"
    return result


def _control(control: dict[str, Any]) -> str:
    """The rollout's control in words.

    >>> _control({"kind": "version", "version": 3, "constant": None})
    'production v3'
    >>> _control({"kind": "constant", "version": None, "constant": 0.1})
    'the constant score 0.1'
    """
    if control.get("kind") == "version":
        return f"production v{control.get('version')}"
    if control.get("kind") == "constant":
        return f"the constant score {control.get('constant'):g}"
    return "the baseline"


def signoff_decision(project: Project, result: RetrainResult) -> SignoffDecision | None:
    """Whether ``result``'s candidate is routine under ``retrain.signoff`` (None without one)."""
    policy = retrain_policy(project).signoff
    if policy is None or result.candidate is None:
        return None
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        candidate = registry.get(result.name, result.candidate)
        production = (
            registry.get(result.name, result.production) if result.production is not None else None
        )
    finally:
        registry.close()
    # the drop is against the score production recorded on its own validation rows: on the
    # candidate's rows, a worse candidate has already stopped at worse_than_production
    recorded = (production.metrics.get("model") or {}) if production is not None else {}
    changes = version_changes(
        candidate,
        production,
        result.metric,
        result.scores.get("candidate"),
        recorded.get(result.metric) if result.metric else None,
    )
    return decide(policy, changes)


def _routine(
    project: Project, result: RetrainResult, signoffs: StandingSignOffs | None
) -> str | None:
    """None when the retrain reuses the standing sign-offs (recorded), else why it cannot."""
    decision = signoff_decision(project, result)
    if decision is None:
        return "retrain.signoff is not set, so every retrain needs one"
    result.signoff = decision.as_dict()
    if not decision.routine:
        return "not a routine retrain (" + "; ".join(decision.reasons) + ")"
    if signoffs is None:
        return "routine, but the approvals log was not passed to reuse its sign-offs"
    standing = signoffs.standing(project)
    missing = [role for role, given in standing.items() if given is None]
    if missing:
        return f"routine, but nobody has signed off as {', '.join(missing)} yet"
    reused = [f"{role}: {given}" for role, given in standing.items()]
    assert result.candidate is not None
    signoffs.record_routine(
        project,
        result.candidate,
        f"v{result.candidate}: routine retrain (trigger {result.trigger}, as of "
        f"{result.as_of.isoformat()}); standing sign-offs reused: {'; '.join(reused)}",
    )
    result.signoff["reused"] = reused
    result.reason += f"; routine: reuses the standing sign-offs ({', '.join(standing)})"
    return None
