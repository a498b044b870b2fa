"""Phase 4, deployment: the promotion gate (:func:`taxiway.sprint.gates.deployment_checks`,
one definition with ``taxiway models promote``), then, when nothing on the critical path
blocks, the candidate becomes the production version in the registry, or, with a
``rollout:`` plan, the rollout controller starts it at the plan's first step (a recommender's
too: its users are randomised between the arms, :mod:`taxiway.serving.recommend_arms`).
"""

from __future__ import annotations

from typing import Any

from taxiway.lineage import build_graph
from taxiway.models.registry import open_registry
from taxiway.spec.project import Project
from taxiway.sprint.approvals import sign_offs
from taxiway.sprint.gates import deployment_checks
from taxiway.sprint.outcome import Check, Exercised, Phase
from taxiway.sprint.phases.governance import rollout_check
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
        if project.spec.rollout is not None:
            return _start_rollout(state, phase, candidate.version)
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
            state.facts["lineage"] = build_graph(
                candidate.name,
                candidate.version,
                candidate.lineage,
                stage="production",
                served=candidate.version,
            ).as_dict()
            deployed = True
    return deployed


def _start_rollout(state: _State, phase: Phase, version: int) -> bool:
    """With a rollout plan, the candidate starts at the plan's first step against its control
    instead of taking all traffic: the controller records the start, runs a first check (it
    holds until the arms have the units and events a decision needs) and says what the next
    step needs. The rollout gate then reports what the controller did."""
    from taxiway.rollout.controller import Controller
    from taxiway.rollout.status import status_document

    project = state.project
    with _step(state, phase, "start the gradual rollout", "run `taxiway rollout start "
               f"-f {project.spec_path}` and fix what it reports"):  # fmt: skip
        with Controller(project, by="taxiway sprint") as controller:
            running = controller.store.active(project.spec.name)
            if running is not None and running.candidate != version:
                controller.abort(reason=f"superseded: the sprint rolls out v{version}")
                running = None
            if running is None:
                controller.start(candidate=version)
            checked = controller.check()
            document = status_document(checked.state)
            unit = checked.state.unit
            decided = _decided_on_outcomes(controller, project.spec.name)
        if decided is not None:
            state.observed["metric_gated_rollout"] = (True, decided)
        needs = "; ".join(document.get("needs") or []) or "nothing more"
        control = document["control"]
        against = (
            f"v{control['version']}"
            if control.get("kind") == "version"
            else str(control.get("kind"))
            if control.get("kind") != "constant"
            else f"the constant {control.get('constant')}"
        )
        evidence = (
            f"rollout {document['id']} {document['state']}: {document['share']:g}% of "
            f"{_units(project, unit)} to v{version} against {against} (step {document['step']} of "
            f"{len(document['steps'])}); first check: {document['verdict']}; the next step "
            f"needs: {needs}"
        )
        exercised = Exercised(True, evidence, document)
        state.exercised["rollout"] = exercised
        state.facts["rollout_state"] = document
        check, facts = rollout_check(project, exercised)
        phase.checks[:] = [c for c in phase.checks if c.name != check.name] + [check]
        state.facts["rollout"] = facts
        phase.checks.append(Check("start the gradual rollout", "pass", evidence, data=document))
        return True
    return False  # the step failed: its check says why


def _units(project: Project, unit: str | None) -> str:
    """What the rollout's share is a share of: a recommender's users (by its user column),
    else the plan's units."""
    named = f" ({unit})" if unit else ""
    return f"users{named}" if project.spec.recommend is not None else f"units{named}"


def _decided_on_outcomes(controller: Any, name: str) -> str | None:
    """The controller's last decision on measured outcomes for ``name`` (a promote, complete or
    rollback whose evidence holds the arms' comparison), from its hash-chained history; None
    when it never decided on one. Readiness level 4 is observed from this, never from a
    plan."""
    store = controller.store
    store.verify()
    for rollout in reversed(store.history(name)):
        for event in reversed(store.events(rollout.id)):
            comparison = event.evidence.get("comparison")
            if event.kind in ("promote", "complete", "rollback") and comparison:
                return (
                    f"rollout {rollout.id} of v{rollout.candidate}: {event.kind} at "
                    f"{event.at:%Y-%m-%d %H:%M} on the measured outcome (difference "
                    f"{comparison.get('diff')}, interval [{comparison.get('low')}, "
                    f"{comparison.get('high')}])"
                )
    return None
