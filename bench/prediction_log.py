"""The prediction log's append latency: how long a request waits for its record to be durable.

``--appenders`` asyncio tasks (default 8) on one event loop append records shaped like the
service's (about 600 bytes: ids, request, 20 features, prediction) as fast as they can, each
waiting for its record to be durable before appending the next one, until ``--records`` in
all (default 20,000). Each append's time is everything the request handler would wait for:
``await log.append(record)``. ``--work-us`` spends that much CPU on the event loop between a
task's appends (the rest of a request's work), which delays the writer thread's wake-ups the
way a busy server does. Prints p50, p99, max, records/s and the mean batch size, for each
``sync`` (always, interval, never), for a log in ``--folder`` (default: a temporary folder under ``bench/.data``)::

    .venv/bin/python bench/prediction_log.py
    .venv/bin/python bench/prediction_log.py --appenders 32 --records 50000 --work-us 200
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from toolkit import percentile

from taxiway.serving.log import PredictionLog, Sync


def _record(task: int, i: int) -> dict[str, object]:
    return {
        "ts": "2026-05-09T12:00:00.123456+00:00",
        "request_id": f"{task:02d}-{i:08d}",
        "model": "retail_churn",
        "model_version": 3,
        "arm": "production",
        "path": "model",
        "latency_ms": 1.234,
        "entities": {"customer": str(i % 1000)},
        "request": {"channel": "web", "basket": 3},
        "features": {f"orders_30d__f{k}": k * 1.5 + i for k in range(20)},
        "prediction": 0.123456,
    }


async def _run(log: PredictionLog, appenders: int, records: int, work_us: float) -> list[float]:
    per_task = records // appenders
    latencies: list[float] = []

    async def appender(task: int) -> None:
        for i in range(per_task):
            record = _record(task, i)
            spin_until = time.perf_counter() + work_us / 1e6
            while time.perf_counter() < spin_until:
                pass
            began = time.perf_counter()
            await log.append(record)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(appender(task) for task in range(appenders)))
    return latencies


def _case(folder: Path, *, sync: Sync, appenders: int, records: int, work_us: float) -> None:
    target = folder / sync
    with PredictionLog(target, sync=sync) as log:
        asyncio.run(_run(log, appenders, records // 10, work_us))  # warm-up
        warm = log.stats()
        began = time.perf_counter()
        latencies = asyncio.run(_run(log, appenders, records, work_us))
        elapsed = time.perf_counter() - began
        stats = log.stats()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    batches = stats["batches"] - warm["batches"]
    written = stats["records"] - warm["records"]
    commit_ms = (stats["commit_seconds_total"] - warm["commit_seconds_total"]) / batches * 1000
    print(
        f"sync={sync:<8}  appenders={appenders}  work={work_us:g}us  "
        f"p50={statistics.median(ms):.3f} ms  p99={percentile(ms, 0.99):.3f} ms  "
        f"max={ms[-1]:.3f} ms  {len(ms) / elapsed:,.0f} records/s  "
        f"mean batch={written / batches:.1f} records  mean commit={commit_ms:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appenders", type=int, default=8)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--work-us", type=float, default=0.0)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    base = Path(__file__).parent / ".data"
    base.mkdir(exist_ok=True)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="prediction-log-", dir=base))
    try:
        for sync in ("always", "interval", "never"):
            _case(
                folder,
                sync=sync,
                appenders=args.appenders,
                records=args.records,
                work_us=args.work_us,
            )
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
