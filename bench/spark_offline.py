"""The rest of the offline work on Spark: `taxiway check` (contracts and quarantine) and a full
`taxiway features materialize` (SQLite) of the retail example, on DuckDB and on Spark local[2].

One process; Spark's session is started before the clock (its start is printed apart). Each
figure is the median of ``--runs`` runs: wall seconds, and CPU seconds of this process and
its children (Spark's JVM is a child: ``psutil`` sums both), so that a loaded machine's wall
time can be read against the work done.

    .venv/bin/python bench/spark_offline.py --customers 2000 --runs 3
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from taxiway.data.check import check_project
from taxiway.features.materialize import materialize
from taxiway.features.online import open_online_store
from taxiway.spec import Project

ROOT = Path(__file__).resolve().parent.parent
RETAIL = ROOT / "examples" / "retail"
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def cpu_seconds() -> float:
    """User + system CPU of this process and every child (the JVM included)."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), cpu_seconds()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def retail(folder: Path, customers: int) -> Path:
    spec = importlib.util.spec_from_file_location("retail_sim", RETAIL / "simulate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["retail_sim"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.simulate(folder / "data", customers=customers)
    shutil.copy(RETAIL / "taxiway.yaml", folder / "taxiway.yaml")
    shutil.copytree(RETAIL / "contracts", folder / "contracts")
    return folder / "taxiway.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tw-spark-offline-"))
    try:
        spec = retail(folder, args.customers)
        started = time.perf_counter()
        from taxiway.engines.spark import spark_session

        spark_session("local[2]")
        print(f"Spark session started in {time.perf_counter() - started:.1f}s")
        orders = sum(1 for _ in (folder / "data").glob("orders*"))
        print(
            f"retail, {args.customers:,} customers ({orders} orders file(s)); median of {args.runs}"
        )
        print(f"{'command':<22}{'engine':<8}{'wall s':>8}{'cpu s':>8}")
        for engine in ("duckdb", "spark"):
            project = Project.load(spec, folder / f"state-{engine}")
            wall, cpu = timed(
                lambda p=project, e=engine: check_project(p, as_of=AS_OF, engine=e), args.runs
            )
            print(f"{'check':<22}{engine:<8}{wall:>8.2f}{cpu:>8.2f}")
            store = open_online_store(
                project.spec.online_store, state_dir=project.state_dir, namespace="bench"
            )
            try:
                wall, cpu = timed(
                    lambda p=project, s=store, e=engine: materialize(
                        p, s, as_of=AS_OF, full=True, engine=e
                    ),
                    args.runs,
                )
            finally:
                store.close()
            print(f"{'materialize --full':<22}{engine:<8}{wall:>8.2f}{cpu:>8.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
