"""A rollout rehearsed on simulated traffic through the real service and the real controller
(``taxiway rollout simulate``): how the interval narrows and which step each check takes,
for a true lift chosen in advance.

The rehearsal runs in a folder of its own; the project's registry, logs and online store are
never touched. The folder holds:

- a SQLite registry with two of the project's trained versions: its production version
  (else its newest) as version 1, in production, and the candidate as version 2 (the spec's
  ``rollout.candidate``, else the newest candidate-stage version, else the production version
  once more: the lift is simulated, so the two models need not differ);
- an empty online store: the simulated units are unknown to it, so every answer's features
  are missing, and the arms' models score them anyway (``serving.missing_features: score``),
  each answer ``degraded`` alike in both arms;
- the prediction log and the outcomes log the service writes, and the rollout's state.

The loop runs a simulated clock from :data:`START`. Units arrive at a steady rate (``units``
over ``duration``), at random times within each interval between two checks, and each sends
one request to the in-process :class:`~taxiway.serving.service.Service` with its unit in the
request: ``Service.parse``, ``Service.answer`` and ``Service.record``, what ``POST
/v1/predict`` runs, so the service assigns the arm and logs the answer. The arm is read from
the answer (never recomputed): a unit converts (the metric's outcome happens) with probability
``base`` when control answered it, and when the candidate did, ``base * (1 + lift)`` for a
metric to increase, ``base * (1 - lift)`` for one to decrease: ``lift`` is the candidate's
true relative improvement, a negative one harm. A conversion is posted a minute later through
``Service.outcome``, what ``POST /v1/outcomes`` runs. At the end of each interval the
controller checks (reading the service's logs) and acts, and the service reads the new state
at once (``Service.follow_rollout``, what its poll does every second).

>>> import tempfile  # doctest: +SKIP
>>> points = rehearse(Project.load("taxiway.yaml"), Path(tempfile.mkdtemp()),
...                   lift=0.05, base=0.1, units=50_000)  # doctest: +SKIP
>>> points[-1].verdict  # doctest: +SKIP
'complete'
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.errors import RolloutError
from taxiway.models.registry import ModelVersion, NewVersion, open_registry
from taxiway.rollout.controller import CheckResult, Controller
from taxiway.rollout.replay import ReplayPoint
from taxiway.serving.service import Service
from taxiway.spec.models import PredictionLogSpec, Rollout, Serving
from taxiway.spec.project import Project

__all__ = [
    "BY",
    "MAX_CHECKS",
    "OUTCOME_DELAY",
    "START",
    "SimulatedClock",
    "rehearse",
    "replay_point",
    "rollout_plan",
    "scratch_project",
]

MAX_CHECKS = 400
"""The most checks a rehearsal runs (the plan's ``check_every`` is stretched beyond that)."""

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""The simulated clock's start (a fixed time in the past: the rehearsal is reproducible, and
the logs it writes are newer than the rollout it starts)."""

OUTCOME_DELAY = timedelta(minutes=1)
"""How long after its answer a simulated conversion is posted."""

BY = "taxiway rollout simulate"
"""Who the rehearsal's transitions are by."""


class SimulatedClock:
    """The time the service writes into its logs: set by the rehearsal, read by the service.

    >>> clock = SimulatedClock(START)
    >>> clock.at += timedelta(hours=1)
    >>> clock().isoformat()
    '2026-01-05T10:00:00+00:00'
    """

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def rehearse(
    project: Project,
    folder: Path,
    *,
    lift: float,
    base: float,
    units: int,
    duration: timedelta | None = None,
    seed: int = 0,
) -> list[ReplayPoint]:
    """Rehearse ``project``'s rollout plan in ``folder`` (see the module); one point per
    check. ``duration`` defaults to twice the plan's steps times its ``min_duration``."""
    plan = rollout_plan(project)
    duration = duration if duration is not None else 2 * len(plan.steps) * plan.min_duration
    scratch = scratch_project(project, plan, folder)
    return asyncio.run(
        _loop(scratch, plan, lift=lift, base=base, units=units, duration=duration, seed=seed)
    )


def rollout_plan(project: Project) -> Rollout:
    """The spec's plan, with a ``converted`` metric when it names none; its candidate is
    version 2 of the scratch registry."""
    plan = project.spec.rollout or Rollout()
    metric = plan.metric or Rollout.model_validate({"metric": "converted"}).metric
    return plan.model_copy(update={"metric": metric, "candidate": None})


def scratch_project(project: Project, plan: Rollout, folder: Path) -> Project:
    """The project's spec over a state of its own in ``folder``: a SQLite registry holding
    the control (1, production) and the candidate (2), an empty SQLite online store, logs
    written without fsync (scratch files), no API keys (nothing is served over HTTP)."""
    spec = project.spec
    serving = (spec.serving or Serving()).model_copy(
        update={"log": PredictionLogSpec(sync="never"), "missing_features": "score", "auth": None}
    )
    scratch_spec = spec.model_copy(
        update={"registry": None, "online_store": None, "rollout": plan, "serving": serving}
    )
    scratch = Project(scratch_spec, project.spec_path, folder / "state")
    control, candidate = _versions(project)
    registry = open_registry(None, state_dir=scratch.state_dir)
    try:
        for version in (control, candidate):
            registry.register(_copy(version), Path(version.artifact_dir))
        registry.set_stage(spec.name, 1, "production", by=BY)
    finally:
        registry.close()
    return scratch


def _versions(project: Project) -> tuple[ModelVersion, ModelVersion]:
    """(control, candidate) among the project's trained versions (see the module)."""
    spec = project.spec
    registry = open_registry(spec.registry, state_dir=project.state_dir)
    try:
        versions = registry.list(spec.name)
        if not versions:
            raise RolloutError(
                f"model {spec.name!r} has no trained version: the rehearsal serves the "
                "project's own versions",
                fix="train one first: `taxiway train`",
            )
        control = registry.production(spec.name) or versions[-1]
        wanted = spec.rollout.candidate if spec.rollout is not None else None
        if wanted is not None:
            candidate = registry.get(spec.name, wanted)
        else:
            newer = [v for v in versions if v.stage == "candidate" and v.version != control.version]
            candidate = newer[-1] if newer else control
    finally:
        registry.close()
    return control, candidate


def _copy(version: ModelVersion) -> NewVersion:
    fields = {f.name for f in dataclasses.fields(NewVersion)}
    return NewVersion(**{k: v for k, v in version.as_dict().items() if k in fields})


async def _loop(
    project: Project,
    plan: Rollout,
    *,
    lift: float,
    base: float,
    units: int,
    duration: timedelta,
    seed: int,
) -> list[ReplayPoint]:
    rng = np.random.default_rng(seed)
    assert plan.metric is not None  # nosec B101
    metric = plan.metric.name
    better = 1.0 if plan.metric.direction == "increase" else -1.0
    rates = {"control": base, "candidate": min(1.0, max(0.0, base * (1.0 + better * lift)))}
    # checks as often as the plan says, but at most MAX_CHECKS in all: a plan that holds each
    # step for a day and checks every minute would otherwise run 14,400 checks
    every = max(plan.check_every, duration / MAX_CHECKS)
    checks = max(1, math.ceil(duration / every))
    per_check = units / checks
    clock = SimulatedClock(START)
    points: list[ReplayPoint] = []
    with Controller(project, by=BY) as controller:
        state = controller.start(candidate=2, now=START, salt=f"rehearsal-{seed}")
        service = Service(project, reload_interval_s=0, rollout_poll_s=0, clock=clock)
        try:
            entities = _entities(service)
            arrived = 0
            for index in range(checks):
                due = round((index + 1) * per_check)
                start = START + index * every
                offsets = np.sort(rng.uniform(0.0, every.total_seconds(), due - arrived))
                draws = rng.random(due - arrived)
                for number, offset, draw in zip(
                    range(arrived, due), offsets.tolist(), draws.tolist(), strict=True
                ):
                    at = start + timedelta(seconds=offset)
                    clock.at = at
                    unit = f"user-{number}"
                    item = {"entities": entities(number), "unit": unit}
                    parsed = service.parse(item)
                    answer = await service.answer(parsed, time.perf_counter())
                    await service.record([answer], [parsed], [item])
                    if draw < rates.get(answer.arm, base):
                        clock.at = at + OUTCOME_DELAY
                        await service.outcome({"unit": unit, "name": metric, "value": True})
                arrived = due
                now = start + every
                clock.at = now
                result = controller.check(now=now)
                service.follow_rollout()
                points.append(replay_point(result, state.share, (now - START) / timedelta(hours=1)))
                state = result.state
                if not state.active or state.state == "paused":
                    break
        finally:
            await service.stop()
    return points


def _entities(service: Service) -> Any:
    """The request's ``entities`` for unit number ``n``: a key unknown to the store for each
    entity either arm looks up (``sim-<n>``, in every key column of a compound key)."""
    contracts = [service.predictor.contract]
    if service.arms is not None:
        contracts += [arm.contract for arm in service.arms.predictors()]
    columns: dict[str, tuple[str, ...]] = {}
    for contract in contracts:
        columns.update(contract.entities)

    def entities(n: int) -> dict[str, Any]:
        key = f"sim-{n}"
        return {
            name: key if len(cols) == 1 else dict.fromkeys(cols, key)
            for name, cols in columns.items()
        }

    return entities


def replay_point(result: CheckResult, share: float, hours: float) -> ReplayPoint:
    """One check as the chart reads it (no interval before there is a finite one)."""
    comparison = result.analysis.comparison
    if comparison is not None and not math.isfinite(comparison.high - comparison.low):
        comparison = None
    return ReplayPoint(
        hours=hours,
        share=share,
        verdict=result.verdict.kind,
        state=result.state.state,
        units=(result.analysis.arms[0].units, result.analysis.arms[1].units),
        diff=None if comparison is None else comparison.diff,
        low=None if comparison is None else comparison.low,
        high=None if comparison is None else comparison.high,
    )
