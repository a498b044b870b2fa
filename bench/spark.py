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


def tree_rss(pids: list[int]) -> int:
    """Resident bytes of ``pids`` and all their descendants (each process counted once)."""
    seen: dict[int, int] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                seen.setdefault(process.pid, process.memory_info().rss)
        except psutil.Error:
            continue
    return sum(seen.values())


def measured(command: list[str], watched: list[int], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; its wall time, the peak RSS of it plus ``watched``, what it handed back."""
    peak = 0
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.2):
            peak = max(peak, tree_rss([child.pid, *watched]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - started
    result = handed_back(out)
    if child.returncode != 0 or result is None:
        raise SystemExit(f"{command} failed:\n{err[-3000:]}")
    return {**result, "wall_s": round(seconds, 1), "peak_mb": round(peak / 2**20)}


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
    manifest = build_training_set(
        project, out, engine="duckdb" if engine == "duckdb" else "spark", master=master
    )
    hand_back({"rows": manifest.rows, "build_s": round(time.perf_counter() - started, 1)})


def run_size(
    rows: int, users: int, engines: list[str], workers: int, memory: str
) -> list[dict[str, Any]]:
    from taxiway.engines.standalone import StandaloneCluster

    folder = DATA / f"events-{rows}"
    generate(rows, users, folder)
    spec = DATA / f"spark-{rows}.yaml"
    conf = f"spark:\n  conf:\n    spark.executor.memory: {memory}\n    spark.driver.memory: 2g\n"
    spec.write_text(SPEC.format(rows=rows) + conf)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    results = []
    with tempfile.TemporaryDirectory(prefix="taxiway-bench-spark-") as tmp:
        outs = {}
        for engine in engines:
            out = Path(tmp) / f"{engine}.parquet"
            command = [sys.executable, __file__, "--worker", str(spec), str(out), engine]
            if engine == "cluster":
                with StandaloneCluster(Path(tmp) / "cluster", workers=workers, memory=memory) as c:
                    watched = [p.pid for p in c.processes]
                    result = measured([*command, c.master_url], watched, env)
            else:
                result = measured([*command, "local[2]"], [], env)
            outs[engine] = out
            if engine != "duckdb" and "duckdb" in outs:
                result["rows_different"] = rows_different(outs["duckdb"], out)
            results.append({"source_rows": rows, "engine": engine, **result})
            print(json.dumps(results[-1]), flush=True)
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
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec, out, engine, master = args.worker
        worker(Path(spec), Path(out), engine, None if engine == "duckdb" else master)
        return
    print(machine(), "·", code_state(), flush=True)
    results = [
        result
        for rows in args.rows
        for result in run_size(rows, args.users, args.engines, args.workers, args.worker_memory)
    ]
    append_record(RECORDS, {"results": results, "code": code_state()})


if __name__ == "__main__":
    main()
