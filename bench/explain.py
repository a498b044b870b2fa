"""Explanations at serving: what ``"explain": true`` adds to a request, at concurrency 8.

The retail example (``serving_peers/build_shop.py``: its LightGBM model, three feature views,
the SQLite online store, ``log.sync: interval``) is served by one real ``taxiway serve`` on
127.0.0.1. In each round (``--rounds``) the same closed-loop load (``serving_peers/pyload.py``:
``--concurrency`` keep-alive connections, ``--duration`` seconds after a 2 s warm-up) is sent
twice, the two variants one after the other in alternating order: the same customers' requests
without ``explain`` and with ``"explain": true``, so machine load hits both alike. Per variant:
requests/s, client-side p50 and p99 latency, the server's own p99 (the logged ``latency_ms``:
from the request's arrival in the app to its answer, what ``serving.latency_budget_ms``
bounds), how many answers were explained and how many went out unexplained at the deadline,
and the server's CPU milliseconds per request (the server process tree's user + system time
over the run / requests answered). The added p99
is the explained p99 minus the plain p99 of the same round; the table gives each round and the
median over rounds.

Before measuring, one explained answer per customer is checked: ``path`` ``model``, and
``bias + sum(contributions)`` equal to ``raw_score`` within 1e-6, whose logistic is the
prediction answered.

    .venv/bin/python bench/explain.py --customers 2000 --rounds 3 --duration 10

Raw figures are appended to ``bench/.data/explain/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from toolkit import (
    ROOT,
    OtherLoad,
    append_record,
    command_line,
    machine,
    markdown_table,
    processes_cpu_seconds,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "explain"
PYLOAD = HERE / "serving_peers" / "pyload.py"
FIRST_CUSTOMER = 100_001


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _shop(customers: int) -> Path:
    folder = DATA / f"shop-{customers}"
    built = subprocess.run(
        [
            sys.executable,
            str(HERE / "serving_peers" / "build_shop.py"),
            "--customers",
            str(customers),
            "--out",
            str(folder),
        ],
        check=False,
    )
    if built.returncode != 0:
        raise SystemExit("building the shop failed")
    return folder / "taxiway.yaml"


def _bodies(folder: Path, customers: int, count: int) -> dict[str, Path]:
    step = max(customers // count, 1)
    keys = [str(FIRST_CUSTOMER + i * step) for i in range(min(count, customers))]
    out = {}
    for variant, extra in (("plain", {}), ("explain", {"explain": True})):
        path = folder / f"bodies-{variant}.jsonl"
        lines = [json.dumps({"entities": {"customer": k}, **extra}) for k in keys]
        path.write_text("\n".join(lines) + "\n")
        out[variant] = path
    return out


def _serve(spec: Path, port: int) -> subprocess.Popen[bytes]:
    log = (DATA / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "taxiway", "serve", "-f", str(spec), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"taxiway serve exited; see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("taxiway serve was not ready in 120 s")


def _check(port: int, bodies: Path) -> int:
    """Every explained answer adds up; returns how many were checked."""
    items = [json.loads(line) for line in bodies.read_text().splitlines() if line]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        # one at a time: a list shares one latency budget, which 256 explanations can spend
        answers = [client.post("/v1/predict", json=item).json() for item in items]
    for answer in answers:
        e = answer["explanation"]
        if answer["path"] != "model" or e is None:
            raise SystemExit(f"not a model answer with an explanation: {answer}")
        total = e["bias"] + sum(e["contributions"].values())
        if abs(total - e["raw_score"]) > 1e-6:
            raise SystemExit(f"contributions add to {total}, raw score {e['raw_score']}")
        if abs(1 / (1 + math.exp(-e["raw_score"])) - answer["prediction"]) > 1e-6:
            raise SystemExit("the raw score is not the answered prediction's")
    return len(answers)


def _tree(process: subprocess.Popen[bytes]) -> list[Any]:
    parent = psutil.Process(process.pid)
    return [parent, *parent.children(recursive=True)]


def _load(port: int, bodies: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(PYLOAD), str(port), "/v1/predict", str(bodies), str(concurrency),
         str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return result


def _explained(logs: Path, since: str) -> tuple[int, int, float]:
    """(explained, not explained, the server's p99 ``latency_ms``) among the logged answers
    from ``since`` (ISO time) on: the latency the budget bounds, from the request's arrival
    in the app to its answer (a closed loop's queueing before arrival is not in it)."""
    time.sleep(1.5)  # log.sync: interval: the last records reach the file within a second
    yes = no = 0
    latencies: list[float] = []
    for path in sorted(logs.glob("predictions-*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if str(record.get("ts", "")) >= since:
                    latencies.append(float(record.get("latency_ms") or 0.0))
                    if record.get("explained"):
                        yes += 1
                    else:
                        no += 1
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return yes, no, p99


def _run(
    port: int, server: subprocess.Popen[bytes], bodies: Path, args: Any, logs: Path
) -> dict[str, Any]:
    _load(port, bodies, args.concurrency, 2.0)  # warm-up, not measured
    tree = _tree(server)
    cpu = processes_cpu_seconds(tree)
    other = OtherLoad()
    since = datetime.now(UTC).isoformat()
    result = _load(port, bodies, args.concurrency, args.duration)
    server_cpu = processes_cpu_seconds(tree) - cpu
    requests = max(result["requests"], 1)
    explained, unexplained, server_p99 = _explained(logs, since)
    return {
        "explained": explained,
        "unexplained": unexplained,
        "server_p99_ms": server_p99,
        "requests": result["requests"],
        "errors": sum(result[k] for k in ("connect", "read", "write", "status", "timeout")),
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "server_cpu_ms_per_request": server_cpu * 1000 / requests,
        "other_load_cores": other.cores(ours=server_cpu),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=256, help="distinct customers asked")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    DATA.mkdir(parents=True, exist_ok=True)
    spec = _shop(args.customers)
    bodies = _bodies(spec.parent, args.customers, args.requests)
    port = _free_port()
    server = _serve(spec, port)
    rows: list[dict[str, Any]] = []
    try:
        checked = _check(port, bodies["explain"])
        for round_ in range(args.rounds):
            order = ["plain", "explain"] if round_ % 2 == 0 else ["explain", "plain"]
            logs = spec.parent / ".taxiway" / "predictions"
            measured = {v: _run(port, server, bodies[v], args, logs) for v in order}
            rows.append({"round": round_ + 1, **measured})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    added = [r["explain"]["p99_ms"] - r["plain"]["p99_ms"] for r in rows]
    added_server = [r["explain"]["server_p99_ms"] - r["plain"]["server_p99_ms"] for r in rows]
    cpu_added = [
        r["explain"]["server_cpu_ms_per_request"] - r["plain"]["server_cpu_ms_per_request"]
        for r in rows
    ]
    table = []
    for r in rows:
        for v in ("plain", "explain"):
            m = r[v]
            table.append(
                [str(r["round"]), v, f"{m['rps']:,.0f}", f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}",
                 f"{m['server_p99_ms']:.2f}", f"{m['server_cpu_ms_per_request']:.3f}",
                 f"{m['other_load_cores']:.2f}",
                 f"{m['explained']:,} / {m['unexplained']:,}", str(m["errors"])]
            )  # fmt: skip
    print(f"`{command_line()}` · {machine()} · {checked} explained answers checked")
    print()
    print(
        markdown_table(
            [
                "round",
                "request",
                "req/s",
                "p50 ms",
                "p99 ms",
                "server p99 ms",
                "server CPU ms/req",
                "other load (cores)",
                "explained / not",
                "errors",
            ],
            table,
        )
    )
    print()
    print(
        f"added by explain (median over {len(rows)} rounds): p99 "
        f"{statistics.median(added):+.2f} ms at the client, "
        f"{statistics.median(added_server):+.2f} ms in the server; server CPU "
        f"{statistics.median(cpu_added):+.3f} ms/request"
    )
    append_record(
        DATA / "results.jsonl",
        {
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "rows": rows,
            "added_p99_ms": added,
            "added_server_p99_ms": added_server,
            "added_cpu_ms": cpu_added,
            "root": str(ROOT),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
