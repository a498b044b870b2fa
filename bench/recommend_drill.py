"""The recommendation service's fault drills, request by request (issue 17).

    .venv/bin/python bench/recommend_drill.py [--requests 400] [--concurrency 4]
                                              [--modes none,down,slow]

What the sprint's drills do (``taxiway.sprint.phases.recommend_integration``), with the
figures the sprint does not print: for each mode, a fresh ``taxiway serve --model 1`` of
``examples/shop-recs`` (trained by ``make demo-recs`` first) with ``TAXIWAY_FAULTS=
recommend_model=MODE`` (``none``: no fault), ``--requests`` requests of known users at
``--concurrency`` keep-alive connections through the sprint's own load client, each timed by
its client and by the service (``latency_ms``). Printed per mode: client p50/p99/max, the
service's p50/p99, and the first requests' client times (a fresh process's first requests are
where a cold cost shows: session 10 found a full garbage collection there, 77 ms).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
from toolkit import latency_summary, machine

from taxiway.spec.project import Project
from taxiway.sprint.load import load_test
from taxiway.sprint.served import running_service

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "shop-recs" / "taxiway.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--modes", default="none,down,slow")
    args = parser.parse_args()
    project = Project.load(SPEC)
    interactions = ROOT / "examples" / "shop-recs" / "data" / "interactions.parquet"
    users = duckdb.execute(
        f"select distinct customer_id from '{interactions}' "  # nosec B608: a path we built
        "where customer_id is not null order by 1 limit 500"
    ).fetchall()
    bodies = [{"user": str(user), "k": 10} for (user,) in users]
    print(machine())
    for mode in args.modes.split(","):
        faults = None if mode == "none" else f"recommend_model={mode}"
        with running_service(project, 1, faults=faults) as service:
            result = load_test(
                service,
                bodies,
                concurrency=args.concurrency,
                duration_s=60,
                max_requests=args.requests,
                path="/v1/recommend",
            )
        client, own = latency_summary(result.client_ms), latency_summary(result.server_ms)
        first = ", ".join(f"{ms:.1f}" for ms in result.client_ms[: args.concurrency])
        print(
            f"{mode}: {result.answered} answered ({result.degraded} degraded, {result.errors} "
            f"errors); client p50 {client['p50']:.1f} ms, p99 {client['p99']:.1f} ms, max "
            f"{max(result.client_ms):.1f} ms; the service's own p50 {own['p50']:.1f} ms, p99 "
            f"{own['p99']:.1f} ms; first {args.concurrency} requests {first} ms"
        )


if __name__ == "__main__":
    main()
