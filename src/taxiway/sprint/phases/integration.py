"""Phase 3, integration: the candidate served by ``taxiway serve`` in a subprocess (the harness
is :mod:`taxiway.sprint.integration`); the smoke test, the load test against the latency
budget, the records the load left in the prediction log, and the fault drills.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taxiway.models.registry import ModelVersion
from taxiway.serving.log import count_records
from taxiway.spec.models import NatsSource, Serving
from taxiway.spec.project import Project
from taxiway.sprint import integration
from taxiway.sprint.load import LoadResult
from taxiway.sprint.outcome import Check, FixKind, Phase, blocker
from taxiway.sprint.phases.running import _phase, _State, _step
from taxiway.sprint.phases.streaming import stream_freshness
from taxiway.sprint.watch import watch


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


def _integration(state: _State) -> None:
    project = state.project
    with _phase(state, "integration") as phase:
        candidate = state.candidate
        if candidate is None:
            phase.checks.append(Check("serve", "skip", "no candidate model to serve"))
            return
        budget = (project.spec.serving or Serving()).latency_budget_ms
        load: LoadResult | None = None
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
                load_began = datetime.now(UTC)
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
                if any(isinstance(s, NatsSource) for s in project.spec.sources.values()):
                    stream_freshness(state, phase, service, candidate, folder)
        if load is not None and load.answered:
            _monitor(state, phase, candidate, folder, load_began, load.answered)
        if not state.bodies or not any(b.get("entities") for b in state.bodies):
            phase.checks.append(Check("fault drill", "skip", "the model reads no online store"))
            return
        results: list[bool] = []
        for mode in integration.DRILL_MODES:
            results.append(_drill(state, phase, candidate.version, budget, mode))
        state.observed["fallback_verified"] = bool(results) and all(results)


def _monitor(
    state: _State,
    phase: Phase,
    candidate: ModelVersion,
    folder: Path,
    since: datetime,
    answered: int,
) -> None:
    """`taxiway monitor` over the load test's answers and the drift drill
    (:mod:`taxiway.sprint.watch`); what it observed decides the deployment's monitoring gate."""
    project = state.project
    with _step(state, phase, "monitor the load test's answers", "run `taxiway monitor -f "
               f"{project.spec_path}` and fix what it reports"):  # fmt: skip
        state.say("integration", "monitor: the load test's answers, then a drift drill")
        began = time.perf_counter()
        scratch = project.state_dir / "sprint" / "monitor"
        shutil.rmtree(scratch, ignore_errors=True)
        run = watch(project, candidate, folder, since, scratch, answered)
        exercised = run.exercised()
        state.exercised["monitoring"] = exercised
        state.facts["monitor"] = run.report
        state.observed["monitoring_exercised"] = (exercised.ok, exercised.evidence)
        phase.checks.append(
            Check(
                "monitor and drift drill",
                "pass" if exercised.ok else "fail",
                exercised.evidence,
                time.perf_counter() - began,
                data=exercised.data,
                blocker=None
                if exercised.ok
                else blocker(
                    "integration",
                    "technical",
                    "the monitor did not see what the sprint did",
                    evidence=exercised.evidence,
                    fix=f"run `taxiway monitor -f {project.spec_path} --json` over the "
                    "service's log and compare with the load test",
                    kind="code",
                ),
            )
        )


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


def _prediction_log_folder(project: Project) -> Path:
    """Where the served candidate writes its prediction log (as `open_prediction_log` does)."""
    spec = (project.spec.serving or Serving()).log
    return Path(spec.path) if spec.path else project.state_dir / "predictions"
