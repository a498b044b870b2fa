"""The retraining loop's costs (issue 21): a trigger to a registered, audited candidate, and
an idle `taxiway run`.

1. **Trigger to candidate**: `taxiway run --once` on the retail example (a copy of its spec
   with ``retrain: {window: 365d}`` and no sign-off, its data as `make demo` writes it, a
   fresh state folder, so the cadence is due), in its own process: wall time from the start
   of the process to its exit (the contract check, the training set, the training, the
   registration with lineage and the audit: gate ``candidate``; the scheduler records the
   run in the registry's database), and that process's CPU seconds.
2. **An idle scheduler**: `taxiway run --tick T` on that state after the retrain (nothing is
   due: the cadence ran, no alert fires, no rollout), started, left to settle for
   ``--settle`` seconds (its imports and first tick), then watched for ``--duration`` seconds
   with psutil: its CPU seconds per minute and its resident memory. Once with the default tick
   (60 s) and once with a 1 s tick.

    .venv/bin/python bench/retrain.py [--customers 5000] [--duration 60] [--settle 15]

The machine is shared: the 1/5/15-minute load averages are printed before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from toolkit import code_state, machine

from taxiway.rollout.retrain import read_runs
from taxiway.spec.project import Project

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "examples" / "retail"
AS_OF = "2025-12-31"


def _spec(folder: Path, data: Path) -> Path:
    text = (RETAIL / "taxiway.yaml").read_text()
    text = text.replace("approvals: [security, privacy, business]", "approvals: []")
    (folder / "data").symlink_to(data)
    shutil.copytree(RETAIL / "contracts", folder / "contracts")
    spec = folder / "taxiway.yaml"
    spec.write_text(f"{text}\nretrain: {{window: 365d}}\n")
    return spec


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def trigger_to_candidate(spec: Path) -> dict[str, object]:
    """One `taxiway run --once` process (the cadence due): wall time, CPU seconds, gate."""
    command = [sys.executable, "-m", "taxiway", "run", "-f", str(spec), "--once"]
    command += ["--as-of", AS_OF]
    load = _load()
    began = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as run:
        watched = psutil.Process(run.pid)
        cpu = 0.0
        while run.poll() is None:
            try:
                times = watched.cpu_times()
                cpu = times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
    wall = time.perf_counter() - began
    if run.returncode != 0:
        raise SystemExit(f"`taxiway run --once` exited {run.returncode}")
    [result] = read_runs(Project.load(spec))
    return {
        "gate": result["gate"],
        "candidate": result["candidate"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_before": load,
        "load_after": _load(),
    }


def idle_scheduler(spec: Path, tick: str, settle: float, duration: float) -> dict[str, object]:
    """`taxiway run --tick ``tick``` on a state with nothing due: CPU s/min and RSS."""
    command = [sys.executable, "-m", "taxiway", "run", "-f", str(spec), "--tick", tick]
    command += ["--as-of", AS_OF]
    load = _load()
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as run:
        try:
            watched = psutil.Process(run.pid)
            time.sleep(settle)
            first = watched.cpu_times()
            began = time.perf_counter()
            peak = 0
            while time.perf_counter() - began < duration:
                peak = max(peak, watched.memory_info().rss)
                time.sleep(1.0)
            last = watched.cpu_times()
            elapsed = time.perf_counter() - began
            rss = watched.memory_info().rss
        finally:
            run.terminate()
            run.wait(120)
    used = (last.user + last.system) - (first.user + first.system)
    return {
        "tick": tick,
        "cpu_s_per_min": round(used * 60 / elapsed, 3),
        "rss_mib": round(rss / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "watched_s": round(elapsed, 1),
        "load_before": load,
        "load_after": _load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=RETAIL / "data", help="`make demo`'s data")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=15.0)
    args = parser.parse_args()
    if not (args.data / "orders.parquet").exists():
        raise SystemExit(f"no data in {args.data}: run `make data` (simulate.py) first")
    print(machine())
    print(code_state())
    with tempfile.TemporaryDirectory() as tmp:
        spec = _spec(Path(tmp), args.data.resolve())
        retrain = trigger_to_candidate(spec)
        print("trigger to candidate:", json.dumps(retrain))
        for tick in ("60s", "1s"):
            idle = idle_scheduler(spec, tick, args.settle, args.duration)
            print("idle scheduler:", json.dumps(idle))


if __name__ == "__main__":
    main()
