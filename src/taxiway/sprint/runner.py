"""The sprint: four phases from data to a live, guarded service; every problem recorded.

:func:`run_sprint` never stops at the first problem. Each step that fails becomes a failed
check with its blocker, and the sprint goes on as far as it can: a step whose inputs a failure
took away is skipped with the reason (training without a readable source, say), not failed
again, so each blocker appears once, where it starts.

1. **data access**: :func:`taxiway.data.check.check_project` (reach, privileges, contracts,
   freshness).
2. **model development**: the point-in-time training set, the model against the baseline
   (:func:`taxiway.models.training.train_model`, which registers the candidate), the online
   store materialized, the handoff audit; a recommender's time split, the model against
   popularity and its own audit (:mod:`.phases.recommend_development`).
3. **integration**: the candidate served by ``taxiway serve`` in a subprocess; smoke test,
   bounded load test against the latency budget, fault drill, the monitor over the load
   test's answers and its drill (:mod:`.integration`, :mod:`.watch`); a recommender's on
   ``/v1/recommend`` (:mod:`.phases.recommend_integration`), its monitor and fallback drill
   (:mod:`.recommend_watch`).
4. **deployment**: owner, action, monitoring, rollout plan, sign-offs; then, when nothing on
   the critical path blocks, the candidate becomes the production version in the registry,
   or, with a ``rollout:`` plan, the rollout controller starts it at the plan's first step.

Then the readiness assessment, the runbooks and the debrief (report.md/html/json). Each phase
is a module of :mod:`taxiway.sprint.phases`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from taxiway.errors import TaxiwayError
from taxiway.rollout.history import history_fact
from taxiway.spec.project import Project
from taxiway.sprint import integration
from taxiway.sprint.assess import Fact, assess, load_answers, observe, spec_declarations
from taxiway.sprint.debrief import Debrief
from taxiway.sprint.outcome import Phase
from taxiway.sprint.phases.data_access import _data_access
from taxiway.sprint.phases.deployment import _deployment
from taxiway.sprint.phases.integration import _integration
from taxiway.sprint.phases.model_development import _model_development
from taxiway.sprint.phases.recommend_integration import _recommend_integration
from taxiway.sprint.phases.running import Progress, SprintOptions, _State
from taxiway.sprint.recommend_watch import monitor_recommender
from taxiway.sprint.report import write_report
from taxiway.sprint.runbooks import write_runbooks

__all__ = ["SprintOptions", "SprintResult", "run_sprint"]


@dataclass
class SprintResult:
    """The debrief, where its report was written, and the service left running (``serve``)."""

    debrief: Debrief
    report: dict[str, Path]
    service: integration.RunningService | None = None


def run_sprint(
    project: Project,
    options: SprintOptions | None = None,
    progress: Progress | None = None,
    on_phase: Callable[[Phase], None] | None = None,
) -> SprintResult:
    """Run the four phases, then write the debrief; see the module docstring.

    ``progress`` hears each step as it starts; ``on_phase`` gets each phase when it ends.
    """
    options = options or SprintOptions()
    state = _State(
        project, options, progress or (lambda _phase, _what: None), on_phase or (lambda _: None)
    )
    # a bad answers file is a usage error: say so before minutes of work, not after
    declared = load_answers(options.answers) if options.answers else {}
    report_dir = options.report_dir or project.state_dir / "sprint" / "report"
    _require_writable(report_dir)  # so is a report folder that cannot be written
    started = datetime.now(UTC)
    _data_access(state)
    _model_development(state)
    if project.spec.recommend is not None:
        _recommend_integration_watched(state)
    else:
        _integration(state)
    deployed = _deployment(state)
    service = None
    if deployed and options.serve:
        state.say("deployment", "starting the production service")
        with integration.running_service(project, None, port=options.port, keep=True) as kept:
            service = kept
    state.say("debrief", "readiness assessment")
    observed_facts = dict(state.observed.items())
    unattended = _unattended(state, deployed)
    unseen = {}
    if unattended is not None:
        observed_facts["unattended"] = unattended
    else:
        reached = "it deployed" if deployed else "nothing but the sign-offs stopped it"
        unseen["unattended"] = (
            f"{reached}, but the sprint did not exercise monitoring and the rollout, so it "
            "did not see a monitored service"
        )
    assessment = assess(observe(observed_facts), declared, spec_declarations(project), unseen)
    state.say("debrief", "runbooks")
    runbooks = write_runbooks(project, report_dir / "runbooks")
    state.facts["runbooks"] = [str(p) for p in runbooks]
    state.facts["history"] = history_fact(project)
    debrief = Debrief(
        project=project.spec.name,
        spec_path=str(project.spec_path),
        started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        phases=state.phases,
        deployed=deployed,
        served_url=service.url if service else None,
        facts=state.facts,
        assessment=assessment.as_dict(),
    )
    state.say("debrief", "writing the report")
    report = write_report(debrief, report_dir)
    return SprintResult(debrief, report, service)


def _recommend_integration_watched(state: _State) -> None:
    """A recommender's integration phase, then its monitor step
    (:func:`~taxiway.sprint.recommend_watch.monitor_recommender`: the load test's answers and
    the fallback drill) in that phase when the phase did not run it itself; the phase is
    handed to ``on_phase`` once both are done, its time including the monitor's."""
    told = state.on_phase
    held: list[Phase] = []
    state.on_phase = lambda phase: (
        held.append(phase) if phase.name == "integration" else told(phase)
    )
    try:
        _recommend_integration(state)
    finally:
        state.on_phase = told
    for phase in held:
        if "monitoring" not in state.exercised:
            began = time.perf_counter()
            monitor_recommender(state, phase)
            phase.duration_s += time.perf_counter() - began
        told(phase)


def _unattended(state: _State, deployed: bool) -> Fact | None:
    """Whether the sprint went from the spec to a served, monitored service with no manual
    step but the sign-offs; ``None`` when it cannot tell: it deployed (or only sign-offs
    stopped it), but the monitor or the rollout was not exercised, so "monitored" was not
    seen. A missing sign-off is the one manual step the question allows, so it is no "no"."""
    others = [b.title for p in state.phases for b in p.blockers if b.kind != "sign_off"]
    if others:
        return (False, f"blocked by {len(others)} besides the sign-offs: {'; '.join(others[:5])}")
    if not deployed and not _only_sign_offs_stopped_it(state):
        return (False, "it did not deploy")
    unseen = [
        k for k in ("monitoring", "rollout") if (state.facts.get(k) or {}).get("observed") is None
    ]
    if unseen:
        return None
    return True


def _only_sign_offs_stopped_it(state: _State) -> bool:
    """Whether the candidate was held back by missing sign-offs alone (it was trained and
    served, and every blocker is a sign-off)."""
    found = [b for p in state.phases for b in p.blockers]
    return state.candidate is not None and bool(found) and all(b.kind == "sign_off" for b in found)


def _require_writable(folder: Path) -> None:
    """Create ``folder`` and prove a file can be written there, or say why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".taxiway-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TaxiwayError(
            f"cannot write the sprint's report to {folder}: {error.strerror or error}",
            fix="give --report a folder you can write, or fix the permissions of this one",
        ) from None
