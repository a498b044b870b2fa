"""Phase 4, deployment: the promotion gate (:func:`taxiway.sprint.gates.deployment_checks`,
one definition with ``taxiway models promote``), then, when nothing on the critical path
blocks, the candidate becomes the production version in the registry.
"""

from __future__ import annotations

from taxiway.models.registry import open_registry
from taxiway.sprint.approvals import sign_offs
from taxiway.sprint.gates import deployment_checks
from taxiway.sprint.outcome import Check
from taxiway.sprint.phases.running import _phase, _State, _step


def _deployment(state: _State) -> bool:
    project = state.project
    deployed = False
    with _phase(state, "deployment") as phase:
        with _step(state, phase, "governance", "fix the spec's governance section"):
            signed = sign_offs(project)
            # one definition with `taxiway models promote` (sprint.gates), judged here on
            # what the monitor (and the rollout controller) observed during this sprint
            checks, used = deployment_checks(project, signed, state.exercised)
            phase.checks.extend(checks)
            state.facts.update(used)
            state.facts["approvals"] = {
                "required": [s.role for s in signed],
                "present": [
                    {
                        "role": s.role,
                        "by": s.approval.by,
                        "at": s.approval.at,
                        "note": s.approval.note,
                        "status": s.status,
                    }
                    for s in signed
                    if s.approval is not None
                ],
            }
        candidate = state.candidate
        if candidate is None:
            phase.checks.append(Check("promote to production", "skip", "no candidate model"))
            return False
        if state.blocked:
            count = sum(1 for p in state.phases for b in p.blockers if b.critical_path)
            phase.checks.append(
                Check(
                    "promote to production",
                    "skip",
                    f"v{candidate.version} not promoted: {count} critical-path blocker(s)",
                )
            )
            return False
        with _step(state, phase, "promote to production", "run `taxiway models promote "
                   f"{candidate.version}`"):  # fmt: skip
            registry = open_registry(project.spec.registry, state_dir=project.state_dir)
            try:
                registry.set_stage(
                    project.spec.name,
                    candidate.version,
                    "production",
                    by="taxiway sprint",
                    note="every sprint check passed",
                )
            finally:
                registry.close()
            phase.checks.append(
                Check("promote to production", "pass", f"v{candidate.version} is in production")
            )
            deployed = True
    return deployed
