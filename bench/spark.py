"""One plan, two engines, at scale: the point-in-time build on DuckDB, Spark local[2] and a
two-worker Spark standalone cluster on loopback, on the same generated data, in one run.

The data and spec are bench/features_scale.py's (events over 2025 for ``--users`` entities;
count/sum/avg over 7d and 30d, a latest value with ttl 7d, a 30-day periodic spine, a label).
Each build runs in a fresh child process; a sampler adds up the resident memory of that
process's tree (the driver's JVM included) and, for the cluster, of the master, the workers
and their executors, every 0.2 s: "peak memory" is the highest sum. Every Spark set is then
compared with DuckDB's row by row (exact for keys, counts and times, 1e-9 relative for
floats): "rows different" must be 0.

    .venv/bin/python bench/spark.py --rows 1_000_000 10_000_000
    .venv/bin/python bench/spark.py --rows 100_000_000 --users 1_000_000   # a quiet machine

Large sizes one engine at a time, the data and the sets kept outside the repo, so a later
engine is compared with DuckDB's set from an earlier run (each result is appended to
bench/.data/spark.jsonl as soon as it is measured; the child's progress goes to
``OUT/<engine>-<rows>.log``):

    .venv/bin/python bench/spark.py --rows 100_000_000 --users 1_000_000 \
        --data /tmp/spark100m --out /tmp/spark100m/sets --engines duckdb
    ... --engines local        # then --engines cluster --worker-memory 4g
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow.parquet as pq
from features_scale import DATA, SPEC, generate
from toolkit import append_record, code_state, hand_back, handed_back, machine

ROOT = Path(__file__).resolve().parent.parent
RECORDS = Path(__file__).resolve().parent / ".data" / "spark.jsonl"
ENGINES = ("duckdb", "local", "cluster")


def tree_usage(pids: list[int]) -> tuple[int, dict[int, float]]:
    """Resident bytes of ``pids`` and all their descendants (each process counted once), and
    the CPU seconds (user + system) each has used so far."""
    seen: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                if process.pid not in seen:
                    seen[process.pid] = process.memory_info().rss
                    times = process.cpu_times()
                    cpu[process.pid] = times.user + times.system
        except psutil.Error:
            continue
    return sum(seen.values()), cpu


def measured(
    command: list[str], watched: list[int], env: dict[str, str], log: Path
) -> dict[str, Any]:
    """Run ``command`` (its stderr to ``log``); its wall time, the peak RSS of it plus
    ``watched``, the CPU seconds they used meanwhile (as last sampled, every 0.2 s: on a
    loaded machine a steadier measure than the wall), what it handed back, and the load
    average before and after."""
    peak = 0
    _, before = tree_usage(watched)  # the cluster's JVMs ran before: count only what follows
    cpu: dict[int, float] = {}
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    with log.open("w") as errors:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.2):
            rss, used = tree_usage([child.pid, *watched])
            peak = max(peak, rss)
            cpu.update(used)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - started
    result = handed_back(out)
    if child.returncode != 0 or result is None:
        raise SystemExit(f"{command} failed:\n{log.read_text()[-3000:]}")
    return {
        **result,
        "wall_s": round(seconds, 1),
        "peak_mb": round(peak / 2**20),
        "cpu_s": round(sum(cpu.values()) - sum(before.get(pid, 0.0) for pid in cpu), 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def rows_different(a: Path, b: Path) -> int:
    """Rows of ``a`` and ``b`` (in the set's order) that differ in any column."""
    left, right = pq.read_table(a), pq.read_table(b)
    if left.column_names != right.column_names or left.num_rows != right.num_rows:
        return max(left.num_rows, right.num_rows)
    differ = np.zeros(left.num_rows, dtype=bool)
    for name in left.column_names:
        x, y = left[name].to_numpy(zero_copy_only=False), right[name].to_numpy(zero_copy_only=False)
        if x.dtype.kind == "f":
            both_nan = np.isnan(x) & np.isnan(y)
            close = np.isclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)
            differ |= ~(close | both_nan)
        else:
            x_null = left[name].is_null().to_numpy(zero_copy_only=False)
            y_null = right[name].is_null().to_numpy(zero_copy_only=False)
            differ |= (x_null != y_null) | (~x_null & (x != y))
    return int(differ.sum())


def worker(spec: Path, out: Path, engine: str, master: str | None) -> None:
    """In a child: one build; hands back the manifest's rows and seconds."""
    from taxiway.features.training_set import build_training_set
    from taxiway.spec import Project

    project = Project.load(spec, out.parent / f".state-{engine}")
    started = time.perf_counter()

    def progress(message: str) -> None:  # to stderr, which the parent keeps in a log
        print(f"{time.perf_counter() - started:8.1f}s {message}", file=sys.stderr, flush=True)

    manifest = build_training_set(
        project,
        out,
        engine="duckdb" if engine == "duckdb" else "spark",
        master=master,
        progress=progress,
    )
    hand_back({"rows": manifest.rows, "build_s": round(time.perf_counter() - started, 1)})


def run_size(
    rows: int,
    users: int,
    engines: list[str],
    workers: int,
    memory: str,
    data: Path,
    kept: Path | None,
) -> list[dict[str, Any]]:
    """Build the set of ``rows`` source rows on each of ``engines``; each result is appended
    to RECORDS when measured. With ``kept``, the sets stay there (a later run's Spark sets
    are compared with the DuckDB set an earlier run left)."""
    from taxiway.engines.standalone import StandaloneCluster

    if data != DATA:  # one folder per user count: a size's data differs with it
        data = data / f"users-{users}"
    folder = data / f"events-{rows}"
    generate(rows, users, folder)
    spec = data / f"spark-{rows}.yaml"
    conf = f"spark:\n  conf:\n    spark.executor.memory: {memory}\n    spark.driver.memory: 2g\n"
    spec.write_text(SPEC.format(rows=rows) + conf)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    results = []
    with tempfile.TemporaryDirectory(prefix="taxiway-bench-spark-") as tmp:
        sets = kept / f"users-{users}" if kept else Path(tmp)
        sets.mkdir(parents=True, exist_ok=True)
        for engine in engines:
            out = sets / f"{engine}-{rows}.parquet"
            log = sets / f"{engine}-{rows}.log"
            command = [sys.executable, __file__, "--worker", str(spec), str(out), engine]
            if engine == "cluster":
                with StandaloneCluster(Path(tmp) / "cluster", workers=workers, memory=memory) as c:
                    watched = [p.pid for p in c.processes]
                    result = measured([*command, c.master_url], watched, env, log)
            else:
                result = measured([*command, "local[2]"], [], env, log)
            duckdb_set = sets / f"duckdb-{rows}.parquet"
            if engine != "duckdb" and duckdb_set.exists():
                result["rows_different"] = rows_different(duckdb_set, out)
            results.append({"source_rows": rows, "users": users, "engine": engine, **result})
            print(json.dumps(results[-1]), flush=True)
            append_record(RECORDS, {"results": results[-1:], "code": code_state()})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", nargs="+", type=lambda s: int(s.replace("_", "")), default=[1_000_000]
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="1g")
    parser.add_argument("--data", type=Path, default=DATA, help="where the events are generated")
    parser.add_argument("--out", type=Path, help="keep the sets (and logs) here")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec, out, engine, master = args.worker
        worker(Path(spec), Path(out), engine, None if engine == "duckdb" else master)
        return
    print(machine(), "·", code_state(), flush=True)
    for rows in args.rows:
        run_size(
            rows, args.users, args.engines, args.workers, args.worker_memory, args.data, args.out
        )


if __name__ == "__main__":
    main()
