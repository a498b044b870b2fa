"""The rollout check over a large log (``bench/rollout.py --part check``): the data, and the
worker that runs the real ``Controller.check`` over it in a fresh process.

The data (written once per size under ``bench/.data/rollout/check-<answers>-<outcomes>/``,
reused): ``predictions/``, N answers in the service's record shape (four workers' files,
``unit``, ``arm`` by :func:`~taxiway.rollout.assignment.arm_for` at 50% under the salt
``bench-salt``, ``model_version`` 1 or 2) over N/10 units and six days from :data:`T0`; and
``outcomes/``, M ``converted`` outcomes of random units over the same days. The tail
(+100k answers, +10k outcomes a day later) is written by the worker and removed after it.

The worker (``python bench/rollout_check.py --root ...``, started by the driver) first runs
one untimed check over an empty log (imports and first calls), then builds a spec whose
``serving.log.path`` is that ``predictions/`` folder, and in a fresh state folder:

1. starts a rollout *now* (the logs are its history) and checks it: the first check skips
   every log file written before the start;
2. aborts it, starts one at :data:`T0` with the same salt (the logs are its own answers) and
   checks it: the first check parses all N answers and M outcomes;
3. checks again with nothing new; 4. appends the tail and checks;
5. times the analysis and the verdict alone over the state the checks left.

It hands back each check's seconds (wall and CPU: ``time.process_time``, this process's
threads together), units, answers per arm and verdict, and the peak RSS
(VmHWM) of the worker.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from toolkit import hand_back, high_water

from taxiway.rollout.analysis import analyse
from taxiway.rollout.assignment import arm_for
from taxiway.rollout.controller import Controller
from taxiway.rollout.plan import frozen_plan
from taxiway.rollout.state import RolloutState
from taxiway.rollout.units import update_units
from taxiway.rollout.verdict import decide
from taxiway.spec.models import Rollout
from taxiway.spec.project import Project

SALT = "bench-salt"
T0 = datetime(2026, 11, 1, tzinfo=UTC)  # the logs' first day: before any run of this bench
DAYS = 6
SHARE = 50.0
CONTROL = {"kind": "version", "version": 1, "constant": None}
PLAN = {
    "steps": [50, 100],
    "min_duration": "30d",  # the step is never over: every check analyses, none promotes
    "metric": {"name": "converted", "min_effect": 0.005},
    "guardrails": {"latency_p99_ms": 50},
}
SPEC = """\
name: churn
sources:
  orders: {{kind: file, path: data/orders.parquet, timestamp: ordered_at}}
entities: {{customer: customer_id}}
serving:
  latency_budget_ms: 50
  log: {{path: {log}}}
"""
FIRST = "predictions-w{worker}-20261101T000000-0000.jsonl"
TAIL = "predictions-w{worker}-20261107T000000-0000.jsonl"
BLOCK = 200_000  # records formatted per write


def _answer(stamp: str, request: str, unit: int, arm: str, prediction: float, ms: float) -> str:
    return (
        f'{{"ts": "{stamp}", "request_id": "{request}", "model": "churn", '
        f'"model_version": {2 if arm == "candidate" else 1}, "arm": "{arm}", "unit": "u{unit}", '
        f'"path": "model", "degraded": false, "reason": null, "prediction": {prediction}, '
        f'"latency_ms": {ms}, "lookup_ms": 0.4, "entities": {{"customer": "u{unit}"}}, '
        f'"request": {{}}, "features": {{"orders__count_30d": 3.0, "orders__spend_90d": 120.5}}, '
        f'"out_of_range": []}}\n'
    )


def _outcome(stamp: str, unit: int) -> str:
    return (
        f'{{"received_at": "{stamp}", "request_id": null, "unit": "u{unit}", '
        f'"name": "converted", "value": true, "timestamp": "{stamp}"}}\n'
    )


def generate(root: Path, answers: int, outcomes: int) -> float:
    """Write the data into ``root`` unless it is there already; the seconds it took (0 when
    reused)."""
    if (root / "written").exists():
        return 0.0
    began = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    (root / "predictions").mkdir(parents=True)
    (root / "outcomes").mkdir(parents=True)
    units = max(answers // 10, 1)
    arms = [arm_for(SALT, f"u{i}", SHARE) for i in range(units)]
    seconds = DAYS * 24 * 3600
    stamps = [(T0 + timedelta(seconds=s)).isoformat() for s in range(seconds)]
    rng = np.random.default_rng(0)
    unit = rng.integers(0, units, answers).tolist()
    at = np.sort(rng.integers(0, seconds, answers)).tolist()
    latency = np.round(rng.exponential(4.0, answers) + 1, 3).tolist()
    prediction = np.round(rng.random(answers), 5).tolist()
    files = [(root / "predictions" / FIRST.format(worker=w)).open("w") for w in range(4)]
    try:
        for w, handle in enumerate(files):
            for start in range(w, answers, 4 * BLOCK):
                rows = range(start, min(start + 4 * BLOCK, answers), 4)
                handle.write(
                    "".join(
                        _answer(stamps[at[i]], f"r{i}", unit[i], arms[unit[i]], prediction[i],
                                latency[i])
                        for i in rows
                    )
                )  # fmt: skip
    finally:
        for handle in files:
            handle.close()
    who = rng.integers(0, units, outcomes).tolist()
    when = np.sort(rng.integers(0, seconds, outcomes)).tolist()
    with (root / "outcomes" / FIRST.format(worker=0)).open("w") as handle:
        handle.write("".join(_outcome(stamps[when[i]], who[i]) for i in range(outcomes)))
    (root / "written").write_text(f"{answers} answers, {outcomes} outcomes\n")
    return time.perf_counter() - began


def tail_paths(root: Path) -> list[Path]:
    """The tail's files (removed before and after each run, so the data stays as generated)."""
    return [root / "predictions" / TAIL.format(worker=0), root / "outcomes" / TAIL.format(worker=1)]


def append_tail(root: Path, answers: int, outcomes: int) -> None:
    """``answers`` more answers (some of new units) and ``outcomes`` more outcomes, a day after
    the logs' last, in new files."""
    rng = np.random.default_rng(1)
    units = int((root / "written").read_text().split()[0]) // 10
    later = T0 + timedelta(days=DAYS)
    lines = []
    for i in range(answers):
        u = int(rng.integers(0, units + units // 5))
        stamp = (later + timedelta(seconds=i * 0.05)).isoformat()
        lines.append(_answer(stamp, f"t{i}", u, arm_for(SALT, f"u{u}", SHARE), 0.5, 3.0))
    predictions, outcome_file = tail_paths(root)
    predictions.write_text("".join(lines))
    stamps = [(later + timedelta(seconds=i * 0.5)).isoformat() for i in range(outcomes)]
    who = rng.integers(0, units, outcomes).tolist()
    outcome_file.write_text("".join(_outcome(stamps[i], who[i]) for i in range(outcomes)))


def _start(controller: Controller, now: datetime | None) -> RolloutState:
    plan = Rollout.model_validate(PLAN)
    return controller.store.start(
        name=controller.name,
        salt=SALT,
        control=dict(CONTROL),
        candidate=2,
        unit=None,
        steps=[float(s) for s in plan.steps],
        plan=frozen_plan(plan, candidate=2, latency_budget_ms=50.0),
        by="bench",
        now=now,
    )


def _check(controller: Controller, now: datetime) -> dict[str, Any]:
    began, cpu = time.perf_counter(), time.process_time()
    result = controller.check(now=now)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    arms = {arm.name: arm.answers for arm in result.analysis.arms}
    return {
        "seconds": seconds,
        "cpu": cpu,
        "units": sum(arm.units for arm in result.analysis.arms),
        "answers": arms,
        "verdict": result.verdict.kind,
    }


def _analysis_alone(controller: Controller, repeat: int) -> dict[str, Any]:
    """Analyse and decide over the stored unit state (read once, not timed), best of
    ``repeat``."""
    state = controller.current()
    plan = Rollout.model_validate(state.plan)
    boundaries = [
        (event.at, event.step_index)
        for event in controller.store.events(state.id)
        if event.kind in ("start", "promote")
    ]
    units = update_units(
        controller.folder(state),
        controller.log_folder,
        salt=state.salt,
        started_at=state.started_at,
        boundaries=boundaries,
        names=[PLAN["metric"]["name"]],  # type: ignore[index]
        latency_limit_ms=plan.guardrails.latency_p99_ms,
        save=False,
    )
    times, cpus = [], []
    for _ in range(repeat):
        began, cpu = time.perf_counter(), time.process_time()
        analysis = analyse(units, state, plan, boundaries=boundaries)
        decide(analysis, state, plan, T0 + timedelta(days=DAYS + 1))
        times.append(time.perf_counter() - began)
        cpus.append(time.process_time() - cpu)
    return {"seconds": min(times), "cpu": min(cpus), "repeat": repeat, "units": len(units.units)}


def worker(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one run of the rollout check (a worker)")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--tail-answers", type=int, default=100_000)
    parser.add_argument("--tail-outcomes", type=int, default=10_000)
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    for path in tail_paths(root):
        path.unlink(missing_ok=True)
    project_folder = root / "project"
    shutil.rmtree(project_folder, ignore_errors=True)
    project_folder.mkdir()
    spec = project_folder / "taxiway.yaml"
    spec.write_text(SPEC.format(log=root / "predictions"))
    result: dict[str, Any] = {}
    (project_folder / "warm" / "predictions").mkdir(parents=True)
    warm_spec = project_folder / "warm" / "taxiway.yaml"
    warm_spec.write_text(SPEC.format(log=project_folder / "warm" / "predictions"))
    with Controller(Project.load(warm_spec), by="bench") as warm:  # first-call costs, untimed
        _start(warm, T0)
        warm.check(now=T0 + timedelta(days=DAYS + 1))
    try:
        with Controller(Project.load(spec), by="bench") as controller:
            _start(controller, None)  # now: every log file is history
            result["history"] = _check(controller, datetime.now(UTC))
            controller.abort(reason="bench: the next rollout reads the logs as its own")
            _start(controller, T0)
            later = T0 + timedelta(days=DAYS + 1)
            result["first"] = _check(controller, later)
            result["nothing_new"] = _check(controller, later)
            append_tail(root, args.tail_answers, args.tail_outcomes)
            result["tail"] = _check(controller, later)
            result["tail"]["added"] = [args.tail_answers, args.tail_outcomes]
            result["analysis"] = _analysis_alone(controller, 3)
    finally:
        for path in tail_paths(root):
            path.unlink(missing_ok=True)
    result["peak_rss"] = high_water()
    hand_back(result)


if __name__ == "__main__":
    worker(sys.argv[1:])
