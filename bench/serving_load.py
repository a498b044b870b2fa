"""One measurement: a closed loop of wrk (or ``serving_peers/pyload.py``) against a running
server, with the CPU its processes, the load generator and everything else used meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving_model import DATA, HOST, PEERS
from serving_servers import server_processes
from serving_targets import Target
from toolkit import busy_cpu_seconds, processes_cpu_seconds, wait_idle

SUSPECT_OCCUPANCY = 1.3  # see measure(): above this, wrk's latencies are not to be trusted


def server_cpu_seconds(pgid: int) -> float:
    """CPU seconds of a server's live processes (see ``server_processes``)."""
    return processes_cpu_seconds(server_processes(pgid))


def load(
    generator: str,
    port: int,
    path: str,
    bodies: Path,
    concurrency: int,
    seconds: float,
    during: Callable[[], Any] | None = None,
    close: bool = False,
) -> tuple[dict[str, Any], Any]:
    """One closed-loop run of ``concurrency`` connections, by wrk (one thread) or by
    serving_peers/pyload.py; and what ``during()`` returned one second into it. Keep-alive
    connections, or with ``close`` (wrk only) a new connection for every request."""
    if generator == "wrk":
        command = [
            "wrk", "-t1", f"-c{concurrency}", f"-d{max(round(seconds), 1)}s", "--timeout",
            "5s", "--latency", "-s", str(PEERS / "post.lua"), f"http://{HOST}:{port}{path}",
            "--", str(bodies), *(["close"] if close else []),
        ]  # fmt: skip
    elif close:
        raise RuntimeError("Connection: close needs wrk (`apt-get install -y wrk`)")
    else:
        command = [sys.executable, str(PEERS / "pyload.py"), str(port), path, str(bodies),
                   str(concurrency), str(seconds)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = None
    if during is not None:
        time.sleep(min(1.0, seconds / 2))
        seen = during()
    stdout, stderr = process.communicate(timeout=seconds + 60)
    marked = [line for line in stdout.splitlines() if line.startswith("WRK_JSON ")]
    if process.returncode or not marked:
        raise RuntimeError(f"{generator} failed ({process.returncode}): {stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(marked[-1].removeprefix("WRK_JSON "))
    return result, seen


def connections_per_process(pgid: int, port: int) -> list[int]:
    """Established connections to ``port`` held by each server process (busiest first): how
    the kernel and the server spread the load generator's connections over the workers."""
    import psutil

    counts = []
    for process in server_processes(pgid):
        with contextlib.suppress(psutil.Error):
            held = [
                c for c in process.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
            ]  # fmt: skip
            if held:
                counts.append(len(held))
    return sorted(counts, reverse=True)


def measure(
    target: Target, port: int, pgid: int, concurrency: int, close: bool, args: argparse.Namespace
) -> dict[str, Any]:
    bodies = DATA / "bodies" / f"{target.name.replace(':', '-')}.jsonl"
    bodies.parent.mkdir(parents=True, exist_ok=True)
    bodies.write_bytes(b"\n".join(target.bodies) + b"\n")
    idle = wait_idle(args.wait_idle).cores if args.wait_idle else None
    load1 = os.getloadavg()[0]
    if args.warmup:
        load(args.load_generator, port, target.path, bodies, concurrency, args.warmup, close=close)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, busy_before = server_cpu_seconds(pgid), busy_cpu_seconds()
    mine = time.process_time()
    began = time.monotonic()
    run, spread = load(
        args.load_generator,
        port, target.path, bodies, concurrency, args.duration,
        during=lambda: connections_per_process(pgid, port), close=close,
    )  # fmt: skip
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    server_cpu = server_cpu_seconds(pgid) - server_before
    others = busy_cpu_seconds() - busy_before - server_cpu - client_cpu
    others -= time.process_time() - mine
    seconds = run["duration_us"] / 1e6
    errors = sum(run[k] for k in ("connect", "read", "write", "status", "timeout"))
    # In a closed loop the latencies add up to at most duration x connections. On this VM
    # wrk's sometimes add up to more (up to 4x, in bursts, seen while the CPUs were busy; a
    # client timing with the monotonic clock stayed consistent): such runs are redone.
    occupancy = run["mean_us"] * run["requests"] / run["duration_us"] / concurrency
    return {
        "target": target.name,
        "server": target.server,
        "workers": target.workers,
        "concurrency": concurrency,
        "connection": "close" if close else "keep-alive",
        "requests": run["requests"],
        "rps": run["requests"] / seconds,
        "rps_per_core": run["requests"] / seconds / max(server_cpu / wall, 1e-9),
        "p50_ms": run["p50_us"] / 1e3,
        "p90_ms": run["p90_us"] / 1e3,
        "p99_ms": run["p99_us"] / 1e3,
        "max_ms": run["max_us"] / 1e3,
        "errors": errors,
        "error_kinds": {k: run[k] for k in ("connect", "read", "write", "status", "timeout")},
        "server_cores": server_cpu / wall,
        "client_cores": client_cpu / wall,
        "other_cores": max(others, 0.0) / wall,
        "connections_per_process": spread,
        "occupancy": occupancy,
        "load_generator": args.load_generator,
        "idle_cores_before": idle,
        "load1_before": load1,
    }
