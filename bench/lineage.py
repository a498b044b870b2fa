"""What OpenLineage events cost each command: the same CLI command with lineage on (the
default file transport) and off (``lineage: {transport: off}``), in the same run, interleaved.

The project: ``--customers`` simulated customers' orders (a Parquet file with an ODCS
contract), one aggregate view, a periodic spine, a no-event label, a logistic model: written
once under ``bench/.data/lineage/``. Two specs read the same data, each with its own state
folder: ``on.yaml`` (no ``lineage:`` section: events to ``<state>/lineage/events.jsonl``) and
``off.yaml``. Both first run every command once (warm-up, and version 1 to audit and promote).
Then, ``--repeats`` times, each command runs as a fresh process (``python -m taxiway ...``,
what a user runs, so the client's import is in the figure) for one spec then the other, the
order alternating per repeat. Timed: the wall clock of the process and its CPU (user +
system, from ``wait4``). Reported per command: the medians with and without, and the median
of the paired differences (with - without).

``--emit N`` also times the emitter alone in this process: N runs (START + COMPLETE) of a
job reading one source with a 10-column schema and 10 assertions and writing one dataset,
to the file transport; the client is imported before the clock starts.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from toolkit import OtherLoad, code_state, machine, markdown_table, versions, wait_idle

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data" / "lineage"

SPEC = """\
name: bench_lineage
sources:
  orders: {kind: file, path: orders.parquet, timestamp: ordered_at, contract: orders.yaml}
entities: {customer: customer_id}
features:
  orders: {source: orders, entity: customer, aggregate: {n: count(*), spend: sum(amount)}, windows: [30d, 90d]}
spine: {every: 14d, start: 2024-02-01, end: 2024-10-01, source: orders}
label: {name: churned, kind: no_event, source: orders, entity: customer, horizon: 30d}
model: {algorithm: logistic}
"""
CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: bench-orders
version: 1.0.0
status: active
schema:
  - name: orders
    properties:
      - {name: customer_id, logicalType: integer, physicalType: bigint, required: true}
      - {name: ordered_at, logicalType: timestamp, required: true}
      - {name: amount, logicalType: number, physicalType: double, required: true}
"""


def _project(customers: int) -> Path:
    folder = DATA / f"c{customers}"
    if (folder / "orders.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    start, end = datetime(2024, 1, 1), datetime(2024, 12, 31)
    orders = []
    for customer in range(1, customers + 1):
        every = rng.choice([3, 10, 40])
        stop = start + timedelta(days=rng.uniform(60, 400))
        t = start + timedelta(days=rng.random() * 20)
        while t < min(stop, end):
            orders.append({"customer_id": customer, "ordered_at": t, "amount": rng.uniform(5, 80)})
            t += timedelta(days=rng.expovariate(1 / every))
    pq.write_table(pa.Table.from_pylist(orders), folder / "orders.parquet")
    (folder / "orders.yaml").write_text(CONTRACT)
    (folder / "on.yaml").write_text(SPEC)
    (folder / "off.yaml").write_text(SPEC + "lineage: {transport: off}\n")
    return folder


def _commands(folder: Path, variant: str, version: int) -> dict[str, list[str]]:
    common = ["-f", str(folder / f"{variant}.yaml"), "--state-dir", str(folder / variant)]
    return {
        "check": ["check", *common, "--json"],
        "features build": [
            "features", "build", *common, "--out", str(folder / f"{variant}.parquet"), "--json",
        ],
        "features materialize": ["features", "materialize", *common, "--as-of", "2024-10-01"],
        "train": ["train", *common, "--json"],
        "audit": ["audit", *common, "--json", "--sample", "20"],
        "models promote": [
            "models", "promote", str(version), *common, "--force", "--reason", "bench",
        ],
    }  # fmt: skip


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m taxiway argv`` (its exit code is not judged)."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "taxiway", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = 0
    return wall, usage.ru_utime + usage.ru_stime


def _emit_only(runs: int) -> float:
    """Milliseconds one run (START + COMPLETE) costs the emitter, client already imported."""
    import taxiway.lineage.events  # noqa: F401  (the import is timed by the commands, not here)
    from taxiway.lineage import Assertion, Dataset, Emitter, SchemaField

    source = Dataset(
        "file",
        "/data/orders.parquet",
        tuple(SchemaField(f"c{i}", "double") for i in range(10)),
        tuple(Assertion("not_null", True, column=f"c{i}", severity="block") for i in range(10)),
    )
    with tempfile.TemporaryDirectory() as folder:
        emitter = Emitter(None, state_dir=Path(folder), use_case="bench")
        began = time.perf_counter()
        for _ in range(runs):
            with emitter.run("check", inputs=[source]) as run:
                run.wrote([Dataset("file", "/data/quarantine.parquet")])
        return (time.perf_counter() - began) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--emit", type=int, default=0, help="Also time N emitter runs alone.")
    parser.add_argument("--wait-idle", type=float, default=0.0, help="Wait up to S seconds.")
    args = parser.parse_args()

    folder = _project(args.customers)
    idle = wait_idle(args.wait_idle, say=print) if args.wait_idle else None
    print(f"{machine()}; {code_state()}")
    print(versions("openlineage-python", "duckdb", "pyarrow"))
    if idle is not None:
        print(f"before: {idle}")
    for variant in ("on", "off"):  # a fresh registry: version numbers below count from 1
        shutil.rmtree(folder / variant, ignore_errors=True)
    load = OtherLoad()
    for variant in ("on", "off"):  # warm-up: caches, and version 1 to audit and promote
        for argv in _commands(folder, variant, 1).values():
            _run(argv)
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for repeat in range(args.repeats):
        order = ("on", "off") if repeat % 2 == 0 else ("off", "on")
        # each repeat's train registers one more version; promote the one it registered
        version = repeat + 2
        for name in _commands(folder, "on", version):
            for variant in order:
                argv = _commands(folder, variant, version)[name]
                samples.setdefault(name, {}).setdefault(variant, []).append(_run(argv))
    rows = []
    for name, by in samples.items():
        on, off = by["on"], by["off"]
        extra_wall = statistics.median(a[0] - b[0] for a, b in zip(on, off, strict=True))
        extra_cpu = statistics.median(a[1] - b[1] for a, b in zip(on, off, strict=True))
        wall_off = statistics.median(s[0] for s in off)
        rows.append(
            [
                f"`{name}`",
                f"{wall_off:.2f} s / {statistics.median(s[1] for s in off):.2f} s",
                f"{statistics.median(s[0] for s in on):.2f} s / "
                f"{statistics.median(s[1] for s in on):.2f} s",
                f"{extra_wall * 1000:+.0f} ms / {extra_cpu * 1000:+.0f} ms "
                f"({extra_wall / wall_off:+.1%})",
            ]
        )
    print(f"others used {load.cores():.2f} cores on average during the runs")
    print(
        markdown_table(
            ["command", "lineage off: wall / CPU", "on: wall / CPU", "with - without (wall)"],
            rows,
        )
    )
    events = folder / "on" / "lineage" / "events.jsonl"
    print(
        f"events file: {events.stat().st_size / 1024:.0f} KiB, {len(events.read_text().splitlines())} events"
    )
    if args.emit:
        print(
            f"emitter alone: {_emit_only(args.emit):.3f} ms per run (START + COMPLETE), {args.emit} runs"
        )


if __name__ == "__main__":
    main()
