"""The sprint: four phases from data to a live, guarded service; every problem recorded.

:func:`run_sprint` never stops at the first problem. Each step that fails becomes a failed
check with its blocker, and the sprint goes on as far as it can: a step whose inputs a failure
took away is skipped with the reason (training without a readable source, say), not failed
again, so each blocker appears once, where it starts.

1. **data access**: :func:`taxiway.data.check.check_project` (reach, privileges, contracts,
   freshness).
2. **model development**: the point-in-time training set, the model against the baseline
   (:func:`taxiway.models.training.train_model`, which registers the candidate), the online
   store materialized, the handoff audit.
3. **integration**: the candidate served by ``taxiway serve`` in a subprocess; smoke test,
   bounded load test against the latency budget, fault drill (:mod:`.integration`).
4. **deployment**: owner, action, monitoring, rollout plan, sign-offs; then, when nothing on
   the critical path blocks, the candidate becomes the production version in the registry.

Then the readiness assessment, the runbooks and the debrief (report.md/html/json).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taxiway.data.check import CheckReport, check_project
from taxiway.errors import TaxiwayError
from taxiway.features.materialize import materialize
from taxiway.features.online import open_online_store
from taxiway.features.training_set import used_sources
from taxiway.models.audit import run_audit
from taxiway.models.registry import ModelVersion, open_registry
from taxiway.models.training import train_model
from taxiway.serving.log import count_records
from taxiway.spec.models import Serving
from taxiway.spec.project import Project
from taxiway.sprint import integration
from taxiway.sprint.approvals import sign_offs
from taxiway.sprint.assess import Fact, assess, load_answers, observe, spec_declarations
from taxiway.sprint.debrief import Debrief
from taxiway.sprint.gates import deployment_checks
from taxiway.sprint.outcome import Check, CheckStatus, Phase, PhaseName, blocker
from taxiway.sprint.phases import (
    audit_checks,
    data_checks,
    latency_check,
    prediction_log_check,
    training_checks,
)
from taxiway.sprint.report import write_report
from taxiway.sprint.runbooks import write_runbooks

__all__ = ["SprintOptions", "SprintResult", "run_sprint"]

Progress = Callable[[str, str], None]
"""Called with (phase, what is happening now) as the sprint goes."""


@dataclass
class SprintOptions:
    """How to run a sprint (every field has a default)."""

    report_dir: Path | None = None
    """Where report.md/html/json and runbooks/ go. Default: ``<state dir>/sprint/report``."""
    as_of: datetime | None = None
    """The moment the sprint acts at: freshness, and the online store's values. Default now."""
    serve: bool = False
    """Keep the production service running after a deployment (its URL is in the result)."""
    port: int | None = None
    answers: Path | None = None
    """The readiness answers file (question id: yes|no) for what the sprint cannot observe."""
    load_seconds: float = 5.0
    concurrency: int = 8
    drill_requests: int = 200
    audit_sample: int = 100
    retrain: bool = False
    """Train and register a new version even when one was trained from the same inputs."""


@dataclass
class SprintResult:
    """The debrief, where its report was written, and the service left running (``serve``)."""

    debrief: Debrief
    report: dict[str, Path]
    service: integration.RunningService | None = None


@dataclass
class _State:
    project: Project
    options: SprintOptions
    say: Progress
    on_phase: Callable[[Phase], None]
    phases: list[Phase] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    observed: dict[str, Fact] = field(default_factory=dict)
    candidate: ModelVersion | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(b.critical_path for p in self.phases for b in p.blockers)


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


# ---------------------------------------------------------------------------- phases


@contextmanager
def _phase(state: _State, name: PhaseName) -> Iterator[Phase]:
    phase = Phase(name, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    state.phases.append(phase)
    began = time.perf_counter()
    try:
        yield phase
    finally:
        phase.duration_s = time.perf_counter() - began
        state.on_phase(phase)


@contextmanager
def _step(state: _State, phase: Phase, name: str, fix: str) -> Iterator[None]:
    """Run a step; an error becomes a failed check with a technical blocker (and the sprint
    goes on)."""
    state.say(phase.name, name)
    began = time.perf_counter()
    try:
        yield
    except TaxiwayError as error:
        phase.checks.append(_crashed(phase.name, name, error.message, error.fix or fix, began))
    except Exception as error:  # a bug or an unexpected failure: recorded, not raised
        where = traceback.extract_tb(error.__traceback__)[-1]
        evidence = f"{type(error).__name__}: {error} ({Path(where.filename).name}:{where.lineno})"
        phase.checks.append(_crashed(phase.name, name, evidence, fix, began))


def _crashed(phase: PhaseName, name: str, evidence: str, fix: str, began: float) -> Check:
    return Check(
        name,
        "fail",
        evidence[:300],
        time.perf_counter() - began,
        blocker=blocker(
            phase, "technical", f"{name} failed", evidence=evidence, fix=fix, kind="code"
        ),
    )


def _data_access(state: _State) -> None:
    with (
        _phase(state, "data_access") as phase,
        _step(state, phase, "check sources", "run `taxiway check` and fix what it reports"),
    ):
        report = check_project(
            state.project,
            as_of=state.options.as_of,
            progress=lambda source, step: state.say("data_access", f"{source}: {step}"),
        )
        phase.checks.extend(data_checks(report))
        state.facts["sources"] = {s.name: s.status for s in report.sources}
        checked = bool(report.sources) and all(s.validation is not None for s in report.sources)
        state.observed["contracts_passed"] = _contracts_passed(report, checked)
        # whether rows are checked is seen only on a source that was read: a source read
        # without a contract is a no; one never read leaves the question unobserved
        bare = sorted(s.name for s in report.sources if any(
            f.rule == "contract.missing" for f in s.findings))  # fmt: skip
        if bare:
            state.observed["contracts_checked"] = (False, f"read unchecked: {', '.join(bare)}")
        elif checked:
            names = ", ".join(s.name for s in report.sources)
            state.observed["contracts_checked"] = (True, f"checked on this read: {names}")


def _contracts_passed(report: CheckReport, checked: bool) -> tuple[bool, str]:
    """Every source reachable and its rows passing its contract: the same findings the phase
    table shows, so a source in ``warn`` (failing rows, late data) is not a pass."""
    failing = [f"{s.name} ({s.status})" for s in report.sources if s.status != "ok"]
    if failing:
        return (False, f"not passing: {', '.join(failing)}")
    if not checked:
        return (False, "a source was read without its contract checked")
    return (True, f"passed: {', '.join(s.name for s in report.sources)}")


def _model_development(state: _State) -> None:
    project = state.project
    with _phase(state, "model_development") as phase:
        unreadable = _blocked_sources(state)
        needed = set(used_sources(project.spec))
        if unreadable & needed:
            names = ", ".join(sorted(unreadable & needed))
            phase.checks.append(
                Check("train", "skip", f"the model reads {names}, which data access blocked")
            )
            return
        registry = open_registry(project.spec.registry, state_dir=project.state_dir)
        try:
            with _step(state, phase, "train", "run `taxiway train` and fix what it reports"):
                began = time.perf_counter()
                result = train_model(
                    project,
                    registry=registry,
                    progress=lambda what: state.say("model_development", what),
                    created_by="taxiway sprint",
                    reuse=not state.options.retrain,
                )
                trained = training_checks(result)
                # the model's check carries the training time (the set's its own)
                trained[-1].duration_s = max(
                    0.0, time.perf_counter() - began - trained[0].duration_s
                )
                phase.checks.extend(trained)
                state.candidate = result.version
                v = result.version
                metric = v.metrics.get("metric")
                state.facts["model"] = {
                    "version": v.version,
                    "algorithm": v.algorithm,
                    "metric": metric,
                    "model": (v.metrics.get("model") or {}).get(metric),
                    "baseline": (v.metrics.get("baseline") or {}).get(metric),
                    "beats_baseline": result.beats_baseline,
                    "baseline_description": v.metrics.get("baseline_description"),
                    # what a retrain costs, the estimate of a fix that needs one: unknown when
                    # the version was reused rather than trained here
                    "training_s": None
                    if result.reused_model
                    else round(time.perf_counter() - began, 3),
                }
                state.observed["lineage_recorded"] = bool(v.lineage)
        finally:
            registry.close()
        if state.candidate is None:
            return
        with _step(state, phase, "materialize the online store", "run `taxiway features "
                   "materialize` and fix what it reports"):  # fmt: skip
            began = time.perf_counter()
            store = open_online_store(
                project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
            )
            try:
                done = materialize(project, store, as_of=state.options.as_of)
            finally:
                store.close()
            phase.checks.append(
                Check(
                    "online store materialized",
                    "pass",
                    f"{len(done.views)} views as of {done.as_of.isoformat()}",
                    time.perf_counter() - began,
                    data=done.as_dict(),
                )
            )
            state.observed["online_store_used"] = True
        with _step(state, phase, "handoff audit", "run `taxiway audit` and fix what it reports"):
            began = time.perf_counter()
            audit = run_audit(project, state.candidate, sample=state.options.audit_sample)
            audited = audit_checks(audit, (state.facts.get("model") or {}).get("training_s"))
            # the audit is timed as a whole; its checks follow, each with its blocker
            phase.checks.append(
                Check(
                    "handoff audit",
                    _worst(audited),
                    _audit_summary(audited, len(audit.findings)),
                    time.perf_counter() - began,
                )
            )
            phase.checks.extend(audited)
            state.facts["audit"] = {
                "blocked": audit.blocked,
                "checks": {c: audit.status(c) for c in audit.checks}
                | {f.check: audit.status(f.check) for f in audit.findings},
                "findings": [
                    {
                        "check": f.check,
                        "severity": f.severity,
                        "message": f.evidence,
                        "fix": f.fix,
                        "feature": f.feature,
                    }
                    for f in audit.findings
                ],
            }
            state.observed["audit_passed"] = not audit.blocked
            skew = audit.status("skew")
            state.observed["skew_checked"] = skew == "passed"
            state.observed["shared_definitions"] = skew == "passed" and state.observed.get(
                "online_store_used", False
            )


_SEVERITY: dict[CheckStatus, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


def _worst(checks: list[Check]) -> CheckStatus:
    """The worst status of ``checks`` (``skip`` only when every one was skipped)."""
    return max((c.status for c in checks), key=_SEVERITY.__getitem__, default="pass")


def _audit_summary(audited: list[Check], findings: int) -> str:
    """The audit in one line, counted from the checks that follow it in the phase table:
    ``5 checks: leakage, coverage failed; 3 passed; 3 finding(s)``."""
    by_check: dict[str, CheckStatus] = {}
    for check in audited:  # "audit leakage (x)" and "audit leakage (y)" are one audit check
        name = check.name.removeprefix("audit ").split(" (")[0]
        seen = by_check.get(name, "skip")
        by_check[name] = max(seen, check.status, key=_SEVERITY.__getitem__)
    parts = []
    for status, word in (("fail", "failed"), ("warn", "warned"), ("skip", "skipped")):
        names = [name for name, found in by_check.items() if found == status]
        if names:
            parts.append(f"{', '.join(names)} {word}")
    passed = sum(1 for found in by_check.values() if found == "pass")
    if passed:
        parts.append(f"{passed} passed")
    return f"{len(by_check)} checks: {'; '.join(parts)}; {findings} finding(s)"


def _blocked_sources(state: _State) -> set[str]:
    blocked: set[str] = set()
    for phase in state.phases:
        if phase.name != "data_access":
            continue
        for check in phase.checks:
            if check.blocker is not None and check.name.startswith("source "):
                blocked.add(check.name.removeprefix("source "))
    return blocked


def _integration(state: _State) -> None:
    project = state.project
    with _phase(state, "integration") as phase:
        candidate = state.candidate
        if candidate is None:
            phase.checks.append(Check("serve", "skip", "no candidate model to serve"))
            return
        budget = (project.spec.serving or Serving()).latency_budget_ms
        with _step(state, phase, "serve the candidate", "run `taxiway serve --model "
                   f"{candidate.version}` and fix what it reports"):  # fmt: skip
            state.bodies = integration.sample_requests(project, candidate)
            began = time.perf_counter()
            with integration.running_service(project, candidate.version) as service:
                phase.checks.append(
                    Check(
                        "service starts",
                        "pass",
                        f"v{candidate.version} ready at {service.url}",
                        time.perf_counter() - began,
                    )
                )
                state.say("integration", "smoke test: every endpoint")
                phase.checks.extend(integration.smoke_test(service, project, state.bodies))
                state.say("integration", f"load test: {state.options.load_seconds:g}s")
                folder = _prediction_log_folder(project)
                before = count_records(folder)
                load = integration.load_test(
                    service,
                    state.bodies,
                    concurrency=state.options.concurrency,
                    duration_s=state.options.load_seconds,
                )
                summary = load.summary(budget)
                state.facts["load"] = summary
                latency = latency_check(summary, candidate.version)
                latency.duration_s = float(summary.get("duration_s") or 0.0)  # the requests' time
                phase.checks.append(latency)
                state.observed["latency_within_budget"] = (
                    latency.status == "pass",
                    f"clients saw p99 {summary['client_p99_ms']:.1f} ms against "
                    f"{budget:g} ms; the service's own p99 {summary['p99_ms']:.1f} ms",
                )
                state.say("integration", "counting the load test's records in the log")
                found = {
                    "folder": str(folder),
                    "records_before": before,
                    "records_written": count_records(folder) - before,
                    "answered": load.answered,
                    "refused_unlogged": load.refused_unlogged,
                }
                logged = prediction_log_check(found, str(service.log))
                phase.checks.append(logged)
                found["status"] = logged.status
                state.facts["prediction_log"] = found
                if logged.status != "skip":
                    state.observed["prediction_log"] = (logged.status == "pass", logged.detail)
                state.observed["metrics_exposed"] = any(
                    c.name == "smoke GET /metrics" and c.status == "pass" for c in phase.checks
                )
        if not state.bodies or not any(b.get("entities") for b in state.bodies):
            phase.checks.append(Check("fault drill", "skip", "the model reads no online store"))
            return
        results: list[bool] = []
        for mode in integration.DRILL_MODES:
            results.append(_drill(state, phase, candidate.version, budget, mode))
        state.observed["fallback_verified"] = bool(results) and all(results)


_DRILL_WORDS = {"down": "down (refusing connections)", "slow": "slow (never answering)"}


def _drill(state: _State, phase: Phase, version: int, budget: float, mode: str) -> bool:
    """One fault drill; its summary goes to ``facts.drills[mode]`` (``facts.drill`` is down's)."""
    ok = False
    with _step(state, phase, f"fault drill: online store {mode}",
               f"run `TAXIWAY_FAULTS=online_store={mode} taxiway serve --model {version}` "
               "and fix what it reports"):  # fmt: skip
        drill = integration.drill(
            state.project, version, state.bodies, requests=state.options.drill_requests,
            mode=mode,
        )  # fmt: skip
        summary = drill.summary(budget)
        # judged as the load test is: the whole request, as the clients timed it
        within = bool(summary["within_budget"])
        all_degraded = drill.degraded == len(drill.server_ms) and drill.requests > 0
        summary.update(all_degraded=all_degraded, mode=mode)
        state.facts.setdefault("drills", {})[mode] = summary
        if mode == "down":
            state.facts["drill"] = summary
        ok = within and all_degraded
        detail = (
            f"{drill.requests} requests with the online store {_DRILL_WORDS[mode]}: "
            f"{drill.degraded} degraded, {drill.errors} errors, clients saw p99 "
            f"{summary['client_p99_ms']:.1f} ms (the service's own "
            f"{summary['p99_ms']:.1f} ms), budget {budget:g} ms"
        )
        phase.checks.append(
            Check(
                f"fault drill: online store {mode}",
                "pass" if ok else "fail",
                detail,
                # the whole drill: its own service's start, the requests, the stop
                duration_s=float(summary.get("total_s") or 0.0),
                data=summary,
                blocker=None
                if ok
                else blocker(
                    "integration",
                    "technical",
                    f"the service does not degrade gracefully when its online store is {mode}",
                    evidence=detail,
                    fix="declare a fallback that needs no online store "
                    "(`serving.fallback: baseline` or a constant) and keep the "
                    "latency budget above the store's timeout",
                    kind="spec_line",
                ),
            )
        )
    return ok


def _deployment(state: _State) -> bool:
    project = state.project
    deployed = False
    with _phase(state, "deployment") as phase:
        with _step(state, phase, "governance", "fix the spec's governance section"):
            signed = sign_offs(project)
            # one definition with `taxiway models promote` (sprint.gates); no monitor or
            # rollout controller runs in a sprint yet: a declared section is declared only
            checks, used = deployment_checks(project, signed)
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


def _prediction_log_folder(project: Project) -> Path:
    """Where the served candidate writes its prediction log (as `open_prediction_log` does)."""
    spec = (project.spec.serving or Serving()).log
    return Path(spec.path) if spec.path else project.state_dir / "predictions"


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
