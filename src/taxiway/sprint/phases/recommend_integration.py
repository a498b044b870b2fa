"""Phase 3 for a ``recommend:`` spec: the candidate recommender served by ``taxiway serve`` in
a subprocess, as a classifier is (:mod:`taxiway.sprint.served`); then what was observed:

- the **smoke test** of its routes (:mod:`taxiway.sprint.recommend_smoke`): a known user
  answered by the model, an unknown user by popularity (degraded), a bad request refused;
- the **load test** on ``POST /v1/recommend`` (:mod:`taxiway.sprint.load`), users drawn from
  the data, p50/p99 as the clients saw them against ``serving.latency_budget_ms``
  (:func:`~taxiway.sprint.phases.integration.latency_check`, the classifier's gate);
- the **prediction log**: a record for every answer of the load test, each holding the full
  list shown (items with their positions), read back from the log;
- the **fault drills**: a second service whose recommender's model step is broken
  (``TAXIWAY_FAULTS=recommend_model=down``: it raises; then ``recommend_model=slow``: it
  sleeps past its share of the budget; see :mod:`taxiway.serving.faults`), loaded as the
  classifier's drill is (:func:`~taxiway.sprint.load.load_test`, a number of requests). Every
  answer must come within the budget as the clients timed it, with no error, ``degraded``,
  from a fallback (never the ``model`` path), and with the filters holding: the lists the
  drill's service logged are read back and checked against what the spec's filters exclude
  for that user at that time, from the data re-read through the sources (the handoff audit's
  :func:`~taxiway.recommend.audit.filters.excluded_items`, never the artifact's filters);
- the **monitor** over the load test's answers (:func:`~taxiway.sprint.recommend_watch.
  monitor_recommender`), run here before the drills so it reads the load test's answers alone.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from taxiway.models.registry import ModelVersion
from taxiway.recommend.audit.context import RecommendAuditContext
from taxiway.recommend.audit.filters import Leak, excluded_items, leaks_in
from taxiway.recommend.pipeline import Recommendation
from taxiway.serving.log import count_records, log_files
from taxiway.spec.models import Serving
from taxiway.spec.project import Project
from taxiway.spec.recommend import AlreadySeenFilter
from taxiway.sprint import integration
from taxiway.sprint.outcome import Check, Phase, blocker
from taxiway.sprint.phases.integration import (
    _prediction_log_folder,
    latency_check,
    prediction_log_check,
)
from taxiway.sprint.phases.running import _phase, _State, _step
from taxiway.sprint.recommend_smoke import recommend_smoke_test
from taxiway.sprint.recommend_watch import monitor_recommender

__all__ = ["DRILL_MODES", "drilled_lists", "full_lists", "recommend_integration"]

DRILL_MODES = ("down", "slow")
"""The recommender model faults the sprint drills, in order (:mod:`taxiway.serving.faults`)."""
_DRILL_WORDS = {"down": "down (raising)", "slow": "slow (past its share of the budget)"}
_DRILL_CONCURRENCY = 4  # as the classifier's drill
_DRILL_SECONDS = 30.0  # at most: the drill asks for a number of requests


def full_lists(folder: Path, since: datetime) -> dict[str, int]:
    """Records in the prediction log at ``folder`` stamped at or after ``since``: how many,
    and how many hold a full list shown (``items``: each with ``item``, and positions 1..n).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "predictions-w1-20250102T000000-0000.jsonl").write_text(
    ...         '{"ts": "2025-01-02T00:00:00+00:00", "items": [{"item": "a", "position": 1}]}\\n'
    ...         '{"ts": "2025-01-02T00:00:01+00:00", "items": []}\\n')
    ...     full_lists(Path(tmp), datetime(2025, 1, 1, tzinfo=UTC))
    {'records': 2, 'with_full_list': 1}
    """
    records = complete = 0
    for path in log_files(folder):
        for line in path.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict) or not _since(record.get("ts"), since):
                continue
            records += 1
            items = record.get("items")
            complete += (
                isinstance(items, list)
                and bool(items)
                and all(
                    isinstance(i, dict) and i.get("item") is not None and i.get("position") == n
                    for n, i in enumerate(items, start=1)
                )
            )
    return {"records": records, "with_full_list": complete}


def _since(stamp: Any, since: datetime) -> bool:
    try:
        at = datetime.fromisoformat(str(stamp))
    except ValueError:
        return False
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) >= since


def _recommend_integration(state: _State) -> None:
    """The integration phase of a recommender (see the module docstring)."""
    with _phase(state, "integration") as phase:
        if state.candidate is None:
            phase.checks.append(Check("serve", "skip", "no candidate model to serve"))
            return
        recommend_integration(state, phase)


def recommend_integration(state: _State, phase: Phase) -> None:
    """Serve the candidate recommender and observe it (see the module docstring)."""
    project, candidate = state.project, state.candidate
    if candidate is None:
        raise ValueError("the integration phase needs a candidate")
    budget = (project.spec.serving or Serving()).latency_budget_ms
    users = [str(b["user"]) for b in state.bodies]
    recommend = project.spec.recommend
    k = int(state.bodies[0]["k"]) if state.bodies else recommend.k if recommend else 10
    served: dict[str, Any] = {}
    with _step(state, phase, "serve the candidate", f"run `taxiway serve -f {project.spec_path} "
               f"--model {candidate.version}` and fix what it reports"):  # fmt: skip
        began = time.perf_counter()
        with integration.running_service(project, candidate.version) as service:
            phase.checks.append(
                Check("service starts", "pass",
                      f"v{candidate.version} ready at {service.url}",
                      time.perf_counter() - began)
            )  # fmt: skip
            state.say("integration", "smoke test: /v1/recommend and every route")
            smoked, answers = recommend_smoke_test(service, project, users, k, candidate.version)
            phase.checks.extend(smoked)
            served["smoke"] = {
                kind: _brief(answers.get(kind) or {}) for kind in ("known", "unknown")
            }
            state.say("integration", f"load test on /v1/recommend: {state.options.load_seconds:g}s")
            folder = _prediction_log_folder(project)
            before = count_records(folder)
            load_began = datetime.now(UTC)
            load = integration.load_test(
                service,
                state.bodies,
                concurrency=state.options.concurrency,
                duration_s=state.options.load_seconds,
                path="/v1/recommend",
            )
            summary = load.summary(budget) | {"path": "/v1/recommend", "users": len(users)}
            state.facts["load"] = summary
            latency = latency_check(summary, candidate.version)
            if latency.blocker is not None:
                fix = _latency_fix(project.spec_path, candidate.version, state)
                latency.blocker = replace(latency.blocker, fix=fix)
            latency.duration_s = float(summary.get("duration_s") or 0.0)
            phase.checks.append(latency)
            state.observed["latency_within_budget"] = (
                latency.status == "pass",
                f"clients saw p99 {summary['client_p99_ms']:.1f} ms on /v1/recommend against "
                f"{budget:g} ms; the service's own p99 {summary['p99_ms']:.1f} ms",
            )
            state.say("integration", "reading the load test's lists back from the log")
            found: dict[str, Any] = {
                "folder": str(folder),
                "records_before": before,
                "records_written": count_records(folder) - before,
                "answered": load.answered,
                "refused_unlogged": load.refused_unlogged,
            }
            logged = prediction_log_check(found, str(service.log))
            phase.checks.append(logged)
            found["status"] = logged.status
            lists = full_lists(folder, load_began)
            found |= lists
            phase.checks.append(_lists_check(lists, load.answered, str(folder)))
            state.facts["prediction_log"] = found
            if logged.status != "skip":
                full = lists["with_full_list"] >= load.answered > 0
                state.observed["prediction_log"] = (
                    logged.status == "pass" and full,
                    f"{logged.detail}; {lists['with_full_list']:,} hold the full list shown",
                )
            state.observed["metrics_exposed"] = any(
                c.name == "smoke GET /metrics" and c.status == "pass" for c in phase.checks
            )
    if served:
        state.facts.setdefault("recommend", {})["served"] = served
    # the monitor reads the load test's answers from the log: before the drills add theirs
    monitor_recommender(state, phase)
    if not state.bodies:
        phase.checks.append(Check("fault drill", "skip", "no users to send the drill's requests"))
        return
    results = [_drill(state, phase, candidate, budget, mode) for mode in DRILL_MODES]
    state.observed["fallback_verified"] = all(results)


def drilled_lists(
    project: Project, version: ModelVersion, folder: Path, since: datetime
) -> dict[str, Any]:
    """What the prediction log at ``folder`` holds since ``since`` (a drill's answers): how
    many records, by ``path``, how many ``degraded``, and every item a declared filter excludes
    for that user at that answer's time (``leaks``, with up to 5 ``examples``), judged from
    the data re-read through the sources as the handoff audit does."""
    context = RecommendAuditContext(project, version)
    found: list[Leak] = []
    paths: dict[str, int] = {}
    records = degraded = 0
    for path in log_files(folder):
        for line in path.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict) or not _since(record.get("ts"), since):
                continue
            records += 1
            degraded += record.get("degraded") is True
            served = str(record.get("path"))
            paths[served] = paths.get(served, 0) + 1
            user = str(record.get("unit"))
            at = datetime.fromisoformat(str(record["ts"]))
            shown = [
                Recommendation(
                    str(i.get("item")), float(i.get("score") or 0.0), str(i.get("stage"))
                )
                for i in record.get("items") or []
                if isinstance(i, dict)
            ]
            exclusions = excluded_items(context, [user], at)
            recent = [str(i) for i in record.get("recent_items") or []]
            if recent and any(
                isinstance(rule, AlreadySeenFilter) and not rule.event_types
                for rule in context.spec.filters
            ):
                exclusions.seen.setdefault(user, set()).update(recent)
            found += leaks_in(served, [user], [shown], exclusions)
    return {
        "records": records,
        "degraded": degraded,
        "paths": dict(sorted(paths.items())),
        "leaks": len(found),
        "examples": [
            f"{leak.filter}: {leak.item} to user {leak.user} on {leak.path}" for leak in found[:5]
        ],
    }


def _drill(state: _State, phase: Phase, candidate: ModelVersion, budget: float, mode: str) -> bool:
    """One drill of the recommender's model ``mode``; its summary goes to
    ``facts.drills[mode]`` (``facts.drill`` is down's)."""
    project, version = state.project, candidate.version
    name = f"fault drill: recommender model {mode}"
    ok = False
    with _step(state, phase, name, f"run `TAXIWAY_FAULTS=recommend_model={mode} taxiway serve "
               f"-f {project.spec_path} --model {version}` and fix what it reports"):  # fmt: skip
        folder = _prediction_log_folder(project)
        began_at = datetime.now(UTC)
        began = time.perf_counter()
        faults = f"recommend_model={mode}"
        with integration.running_service(project, version, faults=faults) as service:
            ready = time.perf_counter()
            drill = integration.load_test(
                service,
                state.bodies,
                concurrency=_DRILL_CONCURRENCY,
                duration_s=_DRILL_SECONDS,
                max_requests=state.options.drill_requests,
                path="/v1/recommend",
            )
            loaded = time.perf_counter()
        drill.service_start_s = ready - began
        drill.service_stop_s = time.perf_counter() - loaded  # the log is flushed: it stopped
        summary = drill.summary(budget)
        lists = drilled_lists(project, candidate, folder, began_at)
        answered = drill.answered
        all_degraded = drill.degraded == answered > 0
        from_model = lists["paths"].get("model", 0)
        logged = lists["records"] >= answered
        summary.update(all_degraded=all_degraded, mode=mode, fault=faults, lists=lists)
        state.facts.setdefault("drills", {})[mode] = summary
        if mode == "down":
            state.facts["drill"] = summary
        ok = (
            bool(summary["within_budget"])
            and all_degraded
            and not from_model
            and not lists["leaks"]
            and logged
        )
        shown = ", ".join(f"{n:,} {path}" for path, n in lists["paths"].items()) or "none"
        detail = (
            f"{drill.requests} requests with the recommender's model {_DRILL_WORDS[mode]}: "
            f"{drill.degraded} degraded ({shown} in the log), {drill.errors} errors, "
            f"{lists['leaks']} filtered items shown; clients saw p99 "
            f"{summary['client_p99_ms']:.1f} ms (the service's own {summary['p99_ms']:.1f} ms), "
            f"budget {budget:g} ms"
        )
        phase.checks.append(
            Check(
                name,
                "pass" if ok else "fail",
                detail,
                duration_s=float(summary.get("total_s") or 0.0),
                data=summary,
                blocker=None
                if ok
                else blocker(
                    "integration",
                    "technical",
                    f"the recommender does not degrade gracefully when its model is {mode}",
                    evidence=detail
                    + ("; " + "; ".join(lists["examples"]) if lists["examples"] else ""),
                    fix=_drill_fix(lists, logged, project.spec_path, version),
                    kind="code",
                ),
            )
        )
    return ok


def _drill_fix(lists: dict[str, Any], logged: bool, spec_path: Path, version: int) -> str:
    """What to do about a failed drill, by what failed."""
    if lists["leaks"]:
        return (
            "a fallback showed items its filters exclude: every step must go through "
            "Recommender.recommend with its stages (serving/recommend_service.py); run "
            f"`taxiway audit -f {spec_path} --model {version}` for the filters check"
        )
    if not logged:
        return "answers of the drill are missing from the log: see serving/recommend_service.py"
    return (
        "keep the fallbacks within the budget: lower the candidates' k (the itemknn and "
        "popularity stages answer a failing model), serve with more workers, or raise "
        "serving.latency_budget_ms; then run the sprint again"
    )


def _latency_fix(spec_path: Path, version: int, state: _State) -> str:
    """What to do when /v1/recommend misses its budget under load: where the audit says the
    time goes, and the recommender's levers."""
    measured = ((state.facts.get("audit") or {}).get("measured") or {}).get("latency") or {}
    costliest = measured.get("costliest_stage")
    where = (
        f"the handoff audit timed each stage alone: the costliest was {costliest}; "
        if costliest
        else ""
    )
    return (
        f"{where}serve it with more workers (`taxiway serve -f {spec_path} --model {version} "
        "--workers N`), lower the candidates' k, or choose a faster primary generator; then "
        "run the sprint again"
    )


def _brief(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer as the debrief keeps it: path, degraded, how many items, the first three."""
    items = answer.get("items") or []
    return {
        "path": answer.get("path"),
        "degraded": answer.get("degraded"),
        "reason": answer.get("reason"),
        "items": len(items),
        "top": [f"{i.get('item')} ({i.get('stage')})" for i in items[:3]],
        "latency_ms": answer.get("latency_ms"),
    }


def _lists_check(lists: dict[str, int], answered: int, folder: str) -> Check:
    """Every answer of the load test logged with the full list it showed."""
    name = "prediction log holds the lists shown"
    full = lists["with_full_list"]
    if not answered:
        return Check(name, "skip", "the load test answered no request")
    detail = (
        f"{full:,} of the {lists['records']:,} records written since the load test began hold "
        f"the full list shown (item and position), for {answered:,} answered requests"
    )
    if full >= answered:
        return Check(name, "pass", detail, data=lists)
    return Check(
        name,
        "fail",
        detail,
        data=lists,
        blocker=blocker(
            "integration",
            "technical",
            "answers are logged without the list they showed",
            evidence=detail,
            fix=f"read the records in {folder}: each answer of /v1/recommend must be logged "
            "with its items and positions before it is sent (serving/recommend_service.py)",
            kind="code",
        ),
    )
