"""What an interleaved answer costs the service against a single arm's (``bench/rollout.py --part
interleaving --il-cost N``): CPU milliseconds per answer, per arm, in one run.

The recommender is ``examples/shop-recs`` (its data as the example has it: 3,000 customers,
1,500 products; EASE, ItemKNN and popularity candidates, three filters, at most 3 per
category, ``k: 10``), trained once under ``bench/.data/rollout/interleave-cost/``; version 2 is a
copy of version 1 (so both arms run the same full pipeline: like with like), version 1 in
production, and a rollout is started at its first step of 25% with ``interleaving: {share: 25}``
and control the production version: users in buckets below 2,500 get the candidate, at 7,500
and above are interleaved, the rest get control. The latency budget is 1 s so every answer is
the model's (no fallback cuts a run short).

Then :class:`~taxiway.serving.recommend_service.RecommendService` answers ``N`` requests
(``k: 10``), one at a time in this process, over the recommender's users cycled; a request's
CPU is the process's CPU time (every thread: the model runs in the service's threads) across
``service.answer``, its wall time beside it. The first 200 answers warm up and are not counted.
Answers are not logged (logging costs both arms the same). Reported per arm: answers, mean and
median CPU ms per answer, wall p50, and interleaved / single-arm ratios of the means.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from pathlib import Path
from statistics import mean, median
from typing import Any

from taxiway.models.registry import NewVersion, open_registry
from taxiway.recommend.training import train_recommender
from taxiway.rollout.controller import Controller
from taxiway.serving.recommend_service import RecommendService
from taxiway.spec.project import Project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop-recs"
FOLDER = Path(__file__).resolve().parent / ".data" / "rollout" / "interleave-cost"
ROLLOUT = (
    "serving:\n  latency_budget_ms: 1000\n\n"
    "rollout:\n  control: production\n  unit: customer_id\n  steps: [25, 50, 100]\n"
    "  metric: {name: click, per: impression}\n"
    "  interleaving: {share: 25}\n\n"
)
WARM_UP = 200


def project() -> Project:
    """The example's spec with the bench's serving and rollout sections, trained once (two
    versions of one model), a rollout with interleaving started."""
    spec = FOLDER / "taxiway.yaml"
    if (FOLDER / ".done").exists():
        return Project.load(spec, FOLDER / "state")
    shutil.rmtree(FOLDER, ignore_errors=True)
    FOLDER.mkdir(parents=True)
    shutil.copytree(EXAMPLE / "contracts", FOLDER / "contracts")
    (FOLDER / "data").symlink_to((EXAMPLE / "data").resolve())
    text = (EXAMPLE / "taxiway.yaml").read_text()
    head, rest = text.split("\nserving:", 1)
    tail = rest[rest.index("\ngovernance:") :]
    spec.write_text(head + "\n" + ROLLOUT + tail.lstrip("\n"))
    loaded = Project.load(spec, FOLDER / "state")
    began = time.perf_counter()
    train_recommender(loaded)
    print(f"(trained examples/shop-recs in {time.perf_counter() - began:.1f} s)")
    registry = open_registry(loaded.spec.registry, state_dir=loaded.state_dir)
    try:
        first = registry.get(loaded.spec.name, 1)
        fields = {f.name for f in dataclasses.fields(NewVersion)}
        copy = NewVersion(**{k: v for k, v in first.as_dict().items() if k in fields})
        registry.register(copy, Path(first.artifact_dir))
        registry.set_stage(loaded.spec.name, 1, "production", by="bench")
    finally:
        registry.close()
    with Controller(loaded) as controller:
        controller.start(candidate=2, salt="bench-interleave-cost")
    (FOLDER / ".done").touch()
    return loaded


async def _answers(service: RecommendService, users: list[str], count: int) -> list[Any]:
    rows = []
    for n in range(count + WARM_UP):
        request = service.parse({"user": users[n % len(users)], "k": 10})
        cpu, wall = time.process_time(), time.perf_counter()
        answer = await service.answer(request, wall)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if n >= WARM_UP:
            rows.append((answer.arm, answer.path, cpu * 1000, wall * 1000))
    return rows


def time_cost(count: int) -> dict[str, Any]:
    """CPU and wall ms per answer of each arm over ``count`` answers (see the module)."""
    loaded = project()
    service = RecommendService(loaded, reload_interval_s=0, rollout_poll_s=0)
    try:
        service.follow_rollout()
        assert service.arms is not None, "the bench's rollout is not running"
        users = [str(u) for u in service.served.recommender.users]
        rows = asyncio.run(_answers(service, users, count))
    finally:
        service.close()
    arms: dict[str, Any] = {}
    for arm in ("control", "candidate", "interleaved"):
        mine = [r for r in rows if r[0] == arm]
        if not mine:
            continue
        cpus, walls = [r[2] for r in mine], sorted(r[3] for r in mine)
        arms[arm] = {
            "answers": len(mine),
            "by_model": sum(r[1] == "model" for r in mine) / len(mine),
            "cpu_ms_mean": mean(cpus),
            "cpu_ms_median": median(cpus),
            "wall_ms_p50": walls[len(walls) // 2],
        }
    single = mean(
        r[2] for r in rows if r[0] in ("control", "candidate")
    )  # a single arm's answer, both arms pooled
    if "interleaved" in arms:
        arms["interleaved"]["cpu_vs_single_arm"] = arms["interleaved"]["cpu_ms_mean"] / single
    return {"answers": count, "arms": arms, "single_arm_cpu_ms_mean": single}
