"""Out of core: a point-in-time training set over 100M source rows on this machine.

Generates N event rows (entity, timestamp, value) in Parquet chunks, then builds a training
set with window aggregates (count, sum, avg over 7d and 30d) and a latest view (ttl 7d) for a
periodic spine, under a DuckDB memory limit, in a fresh process; prints time, peak RSS and the
manifest's phases. Nothing is compared with a peer here: this measures that it finishes.

    .venv/bin/python bench/features_scale.py --rows 100_000_000 --memory-limit 4GB
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA = Path(__file__).resolve().parent / ".data" / "scale"
SPEC = """
name: scale
sources:
  events: {{kind: file, path: events-{rows}/*.parquet, timestamp: ts, available_after: 1h}}
entities: {{user: user_id}}
features:
  activity:
    source: events
    entity: user
    aggregate: {{n: count(*), total: sum(value), mean: avg(value)}}
    windows: [7d, 30d]
  last:
    source: events
    entity: user
    latest: [value]
    ttl: 7d
spine: {{every: 30d, start: 2025-02-01, end: 2025-12-01, source: events}}
label: {{name: active, kind: any_event, source: events, entity: user, horizon: 14d}}
"""


def generate(rows: int, users: int, folder: Path, chunk: int = 5_000_000) -> None:
    """Write ``rows`` events over 2025 for ``users`` entities, in chunks (bounded memory)."""
    if folder.exists() and any(folder.glob("*.parquet")):
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    start = np.datetime64("2025-01-01T00:00:00", "us")
    year_us = 365 * 24 * 3600 * 1_000_000
    for index, offset in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - offset)
        table = pa.table(
            {
                "user_id": rng.integers(0, users, n),
                "ts": start + rng.integers(0, year_us, n).astype("timedelta64[us]"),
                "value": rng.gamma(2.0, 10.0, n),
            }
        )
        pq.write_table(table, folder / f"part-{index:04d}.parquet")


def worker(spec_path: Path, memory_limit: str) -> None:
    from taxiway.features.training_set import build_training_set
    from taxiway.spec import Project

    project = Project.load(spec_path, spec_path.parent / ".state")
    started = time.perf_counter()
    manifest = build_training_set(
        project, spec_path.parent / "training.parquet", memory_limit=memory_limit
    )
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": round(elapsed, 1),
                "peak_rss_mb": round(peak_mb),
                "rows": manifest.rows,
                "phases": manifest.phases,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=100_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.memory_limit)
        return
    folder = DATA / f"events-{args.rows}"
    began = time.perf_counter()
    generate(args.rows, args.users, folder)
    print(f"data: {args.rows:,} rows in {folder} ({time.perf_counter() - began:.0f}s)")
    spec_path = DATA / f"taxiway-{args.rows}.yaml"
    spec_path.write_text(SPEC.format(rows=args.rows))
    result = subprocess.run(
        [sys.executable, __file__, "--worker", str(spec_path), "--memory-limit", args.memory_limit],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        sys.exit(result.returncode)
    print(result.stdout.strip())


if __name__ == "__main__":
    main()
