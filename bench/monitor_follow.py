"""bench/monitor.py, part two: does the monitor keep up with a log growing at 5,000/s?

Two processes. The **writer** appends prediction records (the service's shape, ``FEATURES``
numeric features) to a log through taxiway's own ``PredictionLog`` (``sync="interval"``, the
service's default, files rotated at 64 MiB) at ``rate`` records per second for ``seconds``,
paced every 5 ms from the moment the monitor is ready, and notes when each record was
written. The **monitor** reruns
``WindowStore.update`` on that log every ``every`` seconds (1-minute windows, a 50 ms budget)
with one store, so each run reads only the bytes written since the previous one, and notes
when each run ended and how many records its windows then held, until the writer is done (one
last run then).

The lag of a record is the time from its write to the end of the first run whose windows
count it. The CPU share is each process's CPU seconds (user + system) over its wall time: the
cores the monitor takes from a serving machine to keep up.
"""

from __future__ import annotations

import bisect
import json
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolkit import high_water, latency_summary

FEATURES = 20
VERSION = 1
PATTERN = "predictions-*.jsonl"
DONE = "writer-done.json"
READY = "monitor-ready"  # the writer starts once the monitor has imported and loaded


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def names() -> list[str]:
    return [f"f{j:02d}" for j in range(FEATURES)]


def build_reference(folder: Path, seed: int) -> Path:
    """The stored reference (training's job, not measured): 100,000 rows of the features'
    law, PSI with calibrated thresholds."""
    import numpy as np

    from taxiway.monitoring.reference import build_reference as build

    path = folder / "reference.json"
    rng = np.random.default_rng(seed)
    columns = {name: rng.normal(j, 1.0 + j / 10, 100_000) for j, name in enumerate(names())}
    output = rng.beta(2.0, 5.0, 100_000)
    stored = build(columns, dict.fromkeys(names(), "numeric"), output, statistic="psi")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored))
    return path


def writer(folder: Path, rate: int, seconds: float, seed: int) -> dict[str, Any]:
    """Append ``rate`` records/s for ``seconds``; hand back the timeline of writes."""
    import numpy as np

    from taxiway.serving.log import PredictionLog

    rng = np.random.default_rng(seed + 1)
    columns = names()
    shifts = np.arange(FEATURES, dtype=np.float64)
    scales = 1.0 + shifts / 10
    log_folder = folder / "log"  # emptied by the parent before either process started
    timeline: list[tuple[float, int]] = []  # (wall time, records written by then)
    waited = time.monotonic()
    while not (folder / READY).exists() and time.monotonic() - waited < 120:
        time.sleep(0.01)
    written = 0
    cpu, began = _cpu(), time.monotonic()
    with PredictionLog(log_folder, worker="bench", sync="interval") as log:
        total = int(seconds * rate)
        while written < total:
            due = min(int((time.monotonic() - began) * rate), total)
            if due > written:
                values = rng.normal(size=(due - written, FEATURES)) * scales + shifts
                scores = rng.beta(2.0, 5.0, due - written)
                ts = datetime.now(UTC).isoformat()
                for row, score in zip(values.tolist(), scores.tolist(), strict=True):
                    log.append_sync(
                        {
                            "ts": ts,
                            "request_id": f"r{written:09d}",
                            "model": "bench_follow",
                            "model_version": VERSION,
                            "arm": "production",
                            "unit": f"u{written % 50_000}",
                            "path": "model",
                            "degraded": False,
                            "reason": None,
                            "prediction": score,
                            "latency_ms": 3.2,
                            "lookup_ms": 0.8,
                            "entities": {"customer": written % 50_000},
                            "request": {},
                            "features": dict(zip(columns, row, strict=True)),
                            "out_of_range": [],
                        }
                    )
                    written += 1
                timeline.append((time.time(), written))
            time.sleep(0.005)
        wall = time.monotonic() - began
    result = {
        "written": written,
        "wall": wall,
        "cpu_s": _cpu() - cpu,
        "timeline": timeline,
        "log_bytes": sum(p.stat().st_size for p in log_folder.glob(PATTERN)),
        "files": len(list(log_folder.glob(PATTERN))),
    }
    (folder / DONE).write_text(json.dumps({"written": written}))
    result["peak_rss"] = high_water("self")
    return result


def monitor(folder: Path, every: float, seconds: float) -> dict[str, Any]:
    """Rerun the window update every ``every`` seconds until the writer is done."""
    from taxiway.monitoring.reference import load_reference
    from taxiway.monitoring.windows import WindowStore

    reference = load_reference(json.loads((folder / "reference.json").read_text()))
    store = WindowStore(folder / "windows")
    log_folder = folder / "log"
    log_folder.mkdir(parents=True, exist_ok=True)
    store.update(  # warm: every lazy import done, an empty log read, before the writer starts
        log_folder, PATTERN, reference, window=timedelta(minutes=1), budget_ms=50.0,
        version=VERSION,
    )  # fmt: skip
    (folder / READY).touch()
    runs: list[dict[str, float]] = []
    deadline = time.monotonic() + seconds + 120  # a writer that died does not hang us
    cpu, began = _cpu(), time.monotonic()
    next_run = began
    while time.monotonic() < deadline:
        time.sleep(max(0.0, next_run - time.monotonic()))
        next_run += every
        finished = (folder / DONE).exists()
        start, cpu_before = time.time(), _cpu()
        windows = store.update(
            log_folder, PATTERN, reference, window=timedelta(minutes=1), budget_ms=50.0,
            version=VERSION,
        )  # fmt: skip
        end = time.time()
        counted = sum(window.requests for window in windows)
        runs.append({"start": start, "end": end, "counted": counted, "cpu_s": _cpu() - cpu_before})
        if finished:
            break
    return {
        "runs": runs,
        "wall": time.monotonic() - began,
        "cpu_s": _cpu() - cpu,
        "peak_rss": high_water("self"),
    }


def lags(timeline: list[tuple[float, int]], runs: list[dict[str, float]]) -> dict[str, Any]:
    """Each record's lag (write to the end of the first run counting it), summarised.

    >>> lags([(10.0, 2), (11.0, 3)], [{"end": 10.5, "counted": 2}, {"end": 12.0, "counted": 3}])
    {'records': 3, 'never_counted': 0, 'p50': 0.5, 'p99': 1.0, 'mean': 0.6666666666666666, 'max': 1.0}
    """
    counted = [int(run["counted"]) for run in runs]
    values: list[float] = []
    missing = 0
    done = 0
    for wall, total in timeline:
        for record in range(done, total):
            k = bisect.bisect_right(counted, record)  # the first run counting > record
            if k == len(runs):
                missing += 1
            else:
                values.append(runs[k]["end"] - wall)
        done = total
    summary = latency_summary(values) if values else {}
    summary.pop("calls", None)
    return {"records": done, "never_counted": missing, **summary}
