"""A recommender's rollout rehearsed on simulated users through the real recommendation service
and the real controller (``taxiway rollout simulate -f <recommend spec>``).

The same rehearsal as a classifier's (:mod:`taxiway.serving.simulation`: a folder of its own
with a SQLite registry holding the project's control as version 1, in production, and its
candidate as version 2; a simulated clock from :data:`~taxiway.serving.simulation.START`;
checks by :meth:`Controller.check <taxiway.rollout.controller.Controller.check>` as often as
the plan says, at most :data:`~taxiway.serving.simulation.MAX_CHECKS`), with what a
recommender's traffic is:

- a **user** arrives (``sim-<n>``, new to the recommender) with two items they just looked at
  (drawn from the served catalog), and asks ``POST /v1/recommend`` once, through
  :meth:`RecommendService.recommend <taxiway.serving.recommend_service.RecommendService.recommend>`
  (what the route runs: the arm is the user's, by the rollout's hash);
- the user **converts** (buys the first item shown) with probability ``base`` when control
  answered, ``base * (1 + lift)`` (a metric to increase; ``1 - lift`` to decrease) when the
  candidate did (in an interleaved answer, ``rollout.interleaving``, the team that drafted the
  first item); the arm is read from the answer, never recomputed. The conversion is posted a
  minute later by ``request_id`` and ``item`` only, as a shop's page would, through
  :meth:`RecommendService.outcome`: the rollout's unit state credits it to the request's user.

>>> import tempfile  # doctest: +SKIP
>>> points = rehearse_recommend(Project.load("examples/shop-recs/taxiway.yaml"),
...                             Path(tempfile.mkdtemp()), lift=0.5, base=0.1, units=5_000)  # doctest: +SKIP
>>> points[-1].state  # doctest: +SKIP
'complete'
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from pathlib import Path

import numpy as np

from taxiway.errors import RolloutError
from taxiway.rollout.controller import Controller
from taxiway.rollout.replay import ReplayPoint
from taxiway.serving.recommend_service import RecommendService
from taxiway.serving.simulation import (
    BY,
    MAX_CHECKS,
    OUTCOME_DELAY,
    START,
    SimulatedClock,
    replay_point,
    rollout_plan,
    scratch_project,
)
from taxiway.spec.models import Rollout
from taxiway.spec.project import Project

__all__ = ["RECENT_ITEMS", "rehearse_recommend"]

RECENT_ITEMS = 2
"""Items each simulated user sends as ``context.recent_items`` (so the model can answer a
user it never saw)."""


def rehearse_recommend(
    project: Project,
    folder: Path,
    *,
    lift: float,
    base: float,
    units: int,
    duration: timedelta | None = None,
    seed: int = 0,
) -> list[ReplayPoint]:
    """Rehearse the recommend spec ``project``'s rollout plan in ``folder`` (see the module);
    one point per check. ``duration`` defaults to twice the plan's steps times its
    ``min_duration``."""
    if project.spec.recommend is None:
        raise RolloutError(
            f"{project.spec_path} has no `recommend:` section",
            fix="rehearse a classifier with taxiway.serving.simulation.rehearse",
        )
    plan = rollout_plan(project)
    duration = duration if duration is not None else 2 * len(plan.steps) * plan.min_duration
    scratch = scratch_project(project, plan, folder)
    return asyncio.run(
        _loop(scratch, plan, lift=lift, base=base, units=units, duration=duration, seed=seed)
    )


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
    every = max(plan.check_every, duration / MAX_CHECKS)
    checks = max(1, math.ceil(duration / every))
    per_check = units / checks
    clock = SimulatedClock(START)
    points: list[ReplayPoint] = []
    with Controller(project, by=BY) as controller:
        state = controller.start(candidate=2, now=START, salt=f"rehearsal-{seed}")
        service = RecommendService(project, reload_interval_s=0, rollout_poll_s=0, clock=clock)
        try:
            items = [str(item) for item in service.recommender.items]
            k = service.served.recommender.k
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
                    recent = [str(i) for i in rng.choice(items, RECENT_ITEMS, replace=False)]
                    answer = await service.recommend(f"sim-{number}", k, {"recent_items": recent})
                    shown = answer["items"]
                    # an interleaved answer's first item is one team's: that team's rate
                    if shown and draw < rates.get(shown[0].get("team", answer["arm"]), base):
                        clock.at = at + OUTCOME_DELAY
                        await service.outcome(
                            {
                                "request_id": answer["request_id"],
                                "item": shown[0]["item"],
                                "name": metric,
                                "value": True,
                            }
                        )
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
            service.close()
    return points
