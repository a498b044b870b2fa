"""`taxiway retrain`: one run of the loop, from the sources to the rollout.

:func:`~taxiway.models.retrain.retrain_candidate` runs the gates up to a registered, audited
candidate; this module, a layer above, then starts its rollout against production when the
spec's ``retrain.auto_rollout`` is on, the spec has a ``rollout:`` plan and no sign-off is
required (``governance.approvals`` lists none). Otherwise the run stops at ``candidate``.
"""

from __future__ import annotations

from datetime import datetime

from taxiway.models.retrain import BY, Progress, RetrainResult, retrain_candidate, retrain_policy
from taxiway.rollout.controller import Controller
from taxiway.spec.project import Project

__all__ = ["run_retrain"]


def run_retrain(
    project: Project,
    *,
    as_of: datetime | None = None,
    trigger: str = "cadence",
    progress: Progress | None = None,
) -> RetrainResult:
    """One retrain of ``project``'s model; the result says which gate stopped it."""
    say = progress or (lambda _: None)
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
        result.reason += (
            f"; a sign-off is required ({', '.join(approvals)}): `taxiway approve`, then "
            "`taxiway rollout start`"
        )
        return result
    say(f"starting the rollout of v{result.candidate}")
    with Controller(project, by=BY) as controller:
        state = controller.start(candidate=result.candidate)
    result.gate = "rollout_started"
    result.rollout = {"id": state.id, "control": state.control, "candidate": state.candidate}
    result.reason += f"; rollout {state.id} started against {state.control}"
    return result
