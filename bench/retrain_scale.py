"""The retraining loop on a 10M-row source (issue 21): a trigger to a registered, audited
candidate, twice: the first retrain (no production yet) and the realistic one, a month later,
against a production version.

The source is `bench/features_scale.py`'s (events: ``user_id``, ``ts``, ``value``) and so is
the spec (a 7d/30d activity view, a latest view with a 7-day ttl, a 30-day periodic spine, the
label ``active``: any event in the next 14 days), plus what a retrain needs: a contract on the
source, a ``model:`` section as the retail example's (LightGBM, roc_auc, default parameters),
what the audit's coverage check asks of a production model (an owner, a fallback, who acts on
the predictions), ``retrain: {window: 365d}`` and no sign-off. The generator differs in one way:
features_scale's users all have the same event rate, so nothing predicts the label and every
candidate stops at the ``baseline`` gate; here each user has a rate (gamma) and an active
period (users join and churn), so recent activity predicts the label.

1. Generated once (not timed): ``--rows`` events of 2024 and 2025 over ``--users`` users in
   ``bench/.data/retrain_scale/``, and January 2026's events (the same users, ``rows * 31 /
   731`` of them), which arrive between the two retrains. The source holds two years; the
   retrain's window is one (``retrain.window: 365d``), as a source that keeps its history and
   a model trained on the last year.
2. **First retrain**: `taxiway run --once --as-of 2026-01-01` in a fresh state folder (the
   cadence is due), its own process: wall time, CPU seconds (the process and its children),
   peak resident memory (VmHWM), and the run's per-stage times (``timings_s`` of the run
   record). Gate ``candidate``.
3. Not timed: the candidate is promoted to production, January's file joins the source.
4. **Second retrain**: `taxiway run --once --as-of 2026-02-01`: the same figures; now the
   production version scores the candidate's validation rows too.

    .venv/bin/python bench/retrain_scale.py [--rows 10_000_000] [--users 100_000]
    .venv/bin/python bench/retrain_scale.py --profile   # each retrain under cProfile too
    .venv/bin/python bench/retrain_scale.py --training-set 3   # the window's training set alone

``--training-set N`` builds the first retrain's training set (the window as of 2026-01-01)
N times, each in a fresh process, and prints its wall and CPU seconds and phases: the stage the
window's reach changes, measured without the training around it.

The machine is shared: the 1/5/15-minute load averages are printed before and after each run;
the CPU seconds are the figure to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from toolkit import append_record, code_state, high_water, machine

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "retrain_scale"
START = np.datetime64("2024-01-01T00:00:00", "us")
NEXT = np.datetime64("2026-01-01T00:00:00", "us")
AFTER = np.datetime64("2026-02-01T00:00:00", "us")
AS_OF = ("2026-01-01", "2026-02-01")
SPEC = """
name: scale_retrain
owner: bench
sources:
  events:
    kind: file
    path: events/*.parquet
    timestamp: ts
    available_after: 1h
    contract: contracts/events.yaml
entities: {user: user_id}
features:
  activity:
    source: events
    entity: user
    aggregate: {n: count(*), total: sum(value), mean: avg(value)}
    windows: [7d, 30d]
  last:
    source: events
    entity: user
    latest: [value]
    ttl: 7d
spine: {every: 30d, start: 2024-02-01, end: 2026-12-31, source: events}
label: {name: active, kind: any_event, source: events, entity: user, horizon: 14d}
model: {algorithm: lightgbm, metric: roc_auc, validation: 0.2}
serving: {fallback: baseline}
governance: {action: the benchmark only reads the figures}
retrain: {window: 365d}
"""
CONTRACT = """
apiVersion: v3.1.0
kind: DataContract
id: scale-events
name: events
version: 1.0.0
status: active
schema:
  - name: events
    physicalType: table
    properties:
      - name: user_id
        logicalType: integer
        required: true
      - name: ts
        logicalType: timestamp
        required: true
      - name: value
        logicalType: number
        required: true
        logicalTypeOptions: {minimum: 0}
    quality:
      - metric: rowCount
        mustBeGreaterThan: 1000
        severity: error
"""


def _events(
    rng: np.random.Generator,
    rows: int,
    rate: np.ndarray,
    joined: np.ndarray,
    left: np.ndarray,
    lo: np.datetime64,
    hi: np.datetime64,
) -> pa.Table:
    """``rows`` events in [lo, hi): a user is drawn by its rate times its active time there,
    the event's time uniformly in that active time."""
    start = np.maximum(joined, lo.astype(np.int64))
    end = np.minimum(left, hi.astype(np.int64))
    active = np.clip(end - start, 0, None).astype(np.float64)
    weight = rate * active
    user = rng.choice(rate.size, rows, p=weight / weight.sum())
    ts = start[user] + (rng.random(rows) * active[user]).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    return pa.table(
        {
            "user_id": user[order].astype(np.int64),
            "ts": pa.array(ts[order], type=pa.int64()).cast(pa.timestamp("us")),
            "value": rng.gamma(2.0, 10.0, rows),
        }
    )


def generate(rows: int, users: int, folder: Path) -> tuple[Path, Path]:
    """2024's and 2025's ``rows`` events and January 2026's (``rows * 31 / 731``), written
    once. Users join over the whole span and stay for an exponential time (mean: a year)."""
    history, january = folder / "events-2024-2025.parquet", folder / "events-2026-01.parquet"
    if history.exists() and january.exists():
        return history, january
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(21)
    rate = rng.gamma(0.7, 1.0, users)
    day = 86_400 * 1_000_000
    base = START.astype(np.int64) - 180 * day
    joined = base + rng.integers(0, (AFTER.astype(np.int64) - base), users)
    left = joined + rng.exponential(365 * day, users).astype(np.int64)
    batches = ((history, rows, START, NEXT), (january, rows * 31 // 731, NEXT, AFTER))
    for path, n, lo, hi in batches:
        table = _events(rng, n, rate, joined, left, lo, hi)
        pq.write_table(table, path.with_suffix(".tmp"), row_group_size=1_000_000)
        path.with_suffix(".tmp").rename(path)
    return history, january


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def one_retrain(spec: Path, as_of: str, profile: Path | None) -> dict[str, Any]:
    """`taxiway run --once --as-of ``as_of``` in its own process: wall, CPU, peak RSS, and
    the run record it left (gate, per-stage times)."""
    from taxiway.rollout.retrain import read_runs
    from taxiway.spec.project import Project

    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "taxiway", "run", "-f", str(spec), "--once", "--as-of", as_of]
    log = spec.parent / f"run-{as_of}.log"
    load = _load()
    cpu_before = _children_cpu()
    began = time.perf_counter()
    peak = 0
    with log.open("w") as out, subprocess.Popen(command, stdout=out, stderr=out) as run:
        watched = psutil.Process(run.pid)
        while run.poll() is None:
            try:
                peak = max(peak, high_water(watched.pid) or 0)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
    wall = time.perf_counter() - began
    cpu = _children_cpu() - cpu_before
    if run.returncode != 0:
        raise SystemExit(f"`taxiway run --once` exited {run.returncode}: see {log}")
    record = read_runs(Project.load(spec))[-1]
    return {
        "as_of": as_of,
        "gate": record["gate"],
        "candidate": record["candidate"],
        "production": record["production"],
        "scores": record["scores"],
        "new_rows": record["new_rows"],
        "window": record["window"],
        "timings_s": record.get("timings_s"),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mib": round(peak / 2**20),
        "profiled": profile is not None,
        "load_before": load,
        "load_after": _load(),
        "log": str(log),
    }


def _build_worker(spec: Path) -> None:
    """In a fresh process: the windowed training set as of the first retrain, its phases."""
    from datetime import UTC, datetime

    from taxiway.features.training_set import build_training_set
    from taxiway.models.retrain import windowed_project
    from taxiway.spec.project import Project

    cut, window = windowed_project(Project.load(spec), datetime(2026, 1, 1, tzinfo=UTC))
    manifest = build_training_set(cut, spec.parent / "training-alone.parquet")
    print(json.dumps({"rows": manifest.rows, "window": window, "phases": manifest.phases}))


def training_set_alone(spec: Path) -> dict[str, Any]:
    """The windowed training set built by :func:`_build_worker`: wall, CPU, peak RSS."""
    command = [sys.executable, __file__, "--build-worker", str(spec)]
    load = _load()
    cpu_before = _children_cpu()
    began = time.perf_counter()
    peak = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as run:
        while run.poll() is None:
            peak = max(peak, high_water(run.pid) or 0)
            time.sleep(0.2)
        output = run.stdout.read() if run.stdout else ""
    if run.returncode != 0:
        raise SystemExit(f"the training-set worker exited {run.returncode}")
    return {
        **json.loads(output.strip().splitlines()[-1]),
        "wall_s": round(time.perf_counter() - began, 1),
        "cpu_s": round(_children_cpu() - cpu_before, 1),
        "peak_rss_mib": round(peak / 2**20),
        "load_before": load,
        "load_after": _load(),
    }


def _training_rows(spec: Path, version: int) -> dict[str, Any]:
    from taxiway.models.registry import open_registry
    from taxiway.spec.project import Project

    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        found = registry.get(project.spec.name, version)
    finally:
        registry.close()
    return {"rows": found.training.get("rows"), "split": found.metrics.get("split")}


def _promote(spec: Path, version: int) -> None:
    from taxiway.models.registry import open_registry
    from taxiway.spec.project import Project

    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, version, "production", by="bench", note="bench")
    finally:
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="run each retrain under cProfile")
    parser.add_argument(
        "--training-set", type=int, default=0, metavar="N", help="build the window's set N times"
    )
    parser.add_argument("--build-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_worker:
        _build_worker(args.build_worker)
        return
    print(machine())
    print(code_state())
    began = time.perf_counter()
    data = DATA / f"{args.rows}-{args.users}-2y"
    history, january = generate(args.rows, args.users, data)
    rows = (pq.read_metadata(history).num_rows, pq.read_metadata(january).num_rows)
    print(f"data: {rows[0]:,} + {rows[1]:,} rows in {data} ({time.perf_counter() - began:.0f}s)")
    folder = DATA / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    (folder / "events").mkdir(parents=True)
    (folder / "contracts").mkdir()
    (folder / "contracts" / "events.yaml").write_text(CONTRACT.lstrip())
    spec = folder / "taxiway.yaml"
    spec.write_text(SPEC.lstrip())
    (folder / "events" / history.name).symlink_to(history)
    for round_ in range(args.training_set):
        alone = training_set_alone(spec)
        print(f"training set alone {round_ + 1}:", json.dumps(alone))
        append_record(DATA / "results.jsonl", {"users": args.users, "training_set": alone})
    if args.training_set:
        shutil.rmtree(folder)
        return
    results: list[dict[str, Any]] = []
    for index, as_of in enumerate(AS_OF):
        if index == 1:  # not timed: v1 to production, January's events arrive
            _promote(spec, results[0]["candidate"])
            (folder / "events" / january.name).symlink_to(january)
        profile = folder / f"retrain-{as_of}.prof" if args.profile else None
        result = one_retrain(spec, as_of, profile)
        result["source_rows"] = sum(rows[: index + 1])
        if result["candidate"] is not None:
            result["training_set"] = _training_rows(spec, result["candidate"])
        print(f"retrain {index + 1}:", json.dumps(result))
        results.append(result)
        append_record(
            DATA / "results.jsonl",
            {"users": args.users, "retrain": index + 1, **result},
        )
    if not args.profile:
        shutil.rmtree(folder / ".taxiway" / "tmp", ignore_errors=True)


if __name__ == "__main__":
    main()
