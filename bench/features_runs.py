"""Running one tool of the training-set benchmark: a fresh process killed past a timeout or an
RSS limit, its peak memory and the other load meanwhile, the best of several runs, and the
record each case appends to ``bench/.data/features/results.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from features_data import DATA_DIR, FEAST_TOOLS, HERE, ROOT
from toolkit import (
    append_record,
    busy_cpu_seconds,
    handed_back,
    high_water,
    machine,
    versions,
    wait_idle,
)

MB = 1024 * 1024


def spawn(
    tool: str,
    source: Path,
    spine: Path,
    out: Path,
    *,
    mode: str,
    timeout: float,
    feast_python: Path,
    memory_limit: str | None,
    rss_limit: int,
    src: Path = ROOT / "src",
) -> dict[str, Any]:
    """Run one tool in a fresh process; its result plus wall time and peak RSS (VmHWM).

    A run is killed past ``timeout`` seconds or ``rss_limit`` bytes of resident memory."""
    python = str(feast_python) if tool in FEAST_TOOLS else sys.executable
    command = [
        python,
        str(HERE / "features.py"),  # the worker is features.py --worker
        "--worker",
        tool,
        "--source",
        str(source),
        "--spine-file",
        str(spine),
        "--out",
        str(out),
        "--mode",
        mode,
    ]
    if memory_limit:
        command += ["--memory-limit", memory_limit]
    log = out.with_suffix(".log")
    env = {**os.environ, "PYTHONPATH": str(src), "FEAST_USAGE": "False"}
    busy = busy_cpu_seconds()
    began = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        killed = ""
        peak = 0
        while True:
            peak = max(peak, high_water(process.pid) or 0)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - began > timeout:
                killed = f"timed out after {timeout:.0f} s (killed)"
            elif peak > rss_limit:
                killed = f"passed {rss_limit / 2**30:.0f} GiB RSS after {time.perf_counter() - began:.0f} s (killed)"
            if killed:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    child_cpu = usage.ru_utime + usage.ru_stime
    others = max(busy_cpu_seconds() - busy - child_cpu, 0.0) / max(wall, 1e-9)
    text = log.read_text()
    result: dict[str, Any] = {
        "tool": tool,
        "wall": wall,
        "peak_rss": peak,
        "maxrss": usage.ru_maxrss * 1024,
        "cpu": child_cpu,
        "others": others,  # busy cores of other work meanwhile
        "exit": process.returncode,
        "out": str(out),
    }
    handed = handed_back(text)
    if killed:
        result["error"] = killed
    elif handed is not None:
        result.update(handed)
        result["peak_rss"] = max(peak, result.get("vmhwm") or 0)
    else:
        tail = [line for line in text.strip().splitlines() if line.strip()][-3:]
        reason = "killed by the OOM killer?" if process.returncode == -9 else " | ".join(tail)
        result["error"] = f"exit {process.returncode}: {reason}"[:400]
    return result


def mb_text(n: float | None) -> str:
    return "–" if n is None else f"{n / MB:,.0f} MB"


def s_text(n: float | None) -> str:
    return "–" if n is None else f"{n:.2f} s"


def run_tool(
    args: argparse.Namespace,
    tool: str,
    source: Path,
    spine: Path,
    out: Path,
    mode: str,
    attempt: int,
) -> dict[str, Any]:
    """One run of ``tool`` (after waiting for a quiet machine if asked), printed as it ends."""
    if args.wait_idle:
        wait_idle(args.wait_idle, say=print)
    run = spawn(
        tool,
        source,
        spine,
        out,
        mode=mode,
        timeout=args.timeout,
        feast_python=args.feast_python,
        memory_limit=args.memory_limit,
        rss_limit=int(args.rss_limit * 2**30),
        src=args.baseline_src if tool == "taxiway-baseline" else ROOT / "src",
    )
    status = run.get("error") or ("done" if tool == "profile" else f"{run['seconds']:.2f} s")
    if "cpu_seconds" in run:
        status += f" ({run['cpu_seconds']:.2f} s CPU)"
    print(
        f"  {tool} run {attempt + 1}: {status}, peak {mb_text(run['peak_rss'])}, "
        f"other load {run['others']:.2f} cores",
        flush=True,
    )
    return run


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest successful run (peak RSS: the highest of all runs)."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[-1]
    chosen = dict(min(good, key=lambda r: r["seconds"]))
    chosen["peak_rss"] = max(r["peak_rss"] for r in runs)
    chosen["runs"] = [round(r["seconds"], 3) for r in good]
    chosen["cpu_runs"] = [round(r["cpu_seconds"], 2) for r in good if "cpu_seconds" in r]
    chosen["others_max"] = max(r["others"] for r in runs)
    return chosen


def record(kind: str, case: str, results: dict[str, Any], verdicts: dict[str, Any]) -> None:
    """Append the raw figures to ``bench/.data/features/results.jsonl`` (for the write-up)."""
    fields = {"kind": kind, "case": case, "results": results, "verdicts": verdicts}
    append_record(
        DATA_DIR / "results.jsonl", fields, machine_line=f"{machine()}, {versions('duckdb')}"
    )
