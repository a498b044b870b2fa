"""Stream freshness under load: an event published to NATS -> the value a running service
serves, while the stream carries ``--rate`` events a second and clients keep the service busy.

    .venv/bin/python bench/stream.py [--rate 5000] [--probes 30] [--timeout 10]
                                     [--customers 2000] [--concurrency 4] [--warmup 5]
                                     [--peer feast]

Setup (not timed): the retail example simulated for ``--customers`` into a temporary folder,
``examples/retail-stream``'s spec on its own subject and stream, every order published and
consumed into the history and the tiles, a model trained and the online store materialized
(what the example's README does).

The run, all at once on this machine: ``taxiway serve --model 1``; ``taxiway features
stream``; a publisher process sending ``--rate`` live orders a second (random customers, core
publishes with a ``Nats-Msg-Id`` each, paced in 10 ms ticks); ``--concurrency`` clients
asking ``/v1/predict`` for random customers without pause (a separate process). After
``--warmup`` seconds the sprint's own freshness probes (:mod:`taxiway.sprint.freshness`, one
after another, each polled every 10 ms) measure publish -> served value: the probe events
queue in the same stream behind the load's.

Reported: the probes' p50/p99/max (wall; up to one poll interval over), the rate the publisher
held and the consumer's lag at the end, the clients' /v1/predict p50/p99 and answers a second
over the same span, each process's CPU seconds over the span (and per 1,000 events for the
consumer), and the machine's other load (bench/toolkit.py) and load average: a shared machine
makes every figure worse, never better. Goal (Tecton's published target): p99 under 1 s at
5,000 events/s. ``--peer feast`` then runs bench/stream_feast.py (Feast's push source
through its feature server) at the same rate, probes and clients, in Feast's venv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from toolkit import FEAST_VENV, ROOT, OtherLoad, hand_back, handed_back, latency_summary, machine

URL = "nats://127.0.0.1:4222"
EXAMPLES = ROOT / "examples"


def _simulator() -> Any:
    spec = importlib.util.spec_from_file_location("retail_sim", EXAMPLES / "retail" / "simulate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["retail_sim"] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the processes


def publish(subject: str, orders: Path, rate: float) -> None:
    """The publisher process: ``rate`` live orders a second until SIGTERM; hands back what it
    sent and over how long."""
    import nats
    import pyarrow.parquet as pq

    table = pq.read_table(orders, columns=["customer_id", "product_id", "amount", "quantity"])
    rows = [r for r in table.to_pylist() if r["customer_id"] is not None and (r["amount"] or 0) > 0]
    stop = asyncio.Event()

    async def run() -> dict[str, Any]:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        client = await nats.connect(URL)
        rng = random.Random(18)
        sent, tick = 0, 0.01
        began = time.monotonic()
        run_id = uuid.uuid4().hex[:8]
        while not stop.is_set():
            due = int((time.monotonic() - began) * rate) - sent
            now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
            for _ in range(max(0, due)):
                row = rng.choice(rows)
                event = {**row, "order_id": 10**12 + sent, "ordered_at": now, "ingested_at": now,
                         "status": "placed"}  # fmt: skip
                await client.publish(
                    subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": f"{run_id}-{sent}"}
                )
                sent += 1
            await client.flush()
            await asyncio.sleep(tick)
        elapsed = time.monotonic() - began
        await client.close()
        return {"sent": sent, "seconds": elapsed}

    hand_back(asyncio.run(run()))


def load(url: str, customers: list[str], concurrency: int) -> None:
    """The clients' process: ``concurrency`` clients asking /v1/predict without pause until
    SIGTERM; hands back their latencies' summary."""
    import httpx

    stop = asyncio.Event()
    times: list[float] = []
    errors = [0]

    async def client(http: httpx.AsyncClient, rng: random.Random) -> None:
        while not stop.is_set():
            body = {"entities": {"customer": rng.choice(customers)}}
            t0 = time.perf_counter()
            answer = await http.post("/v1/predict", json=body)
            times.append((time.perf_counter() - t0) * 1000)
            if answer.status_code != 200:
                errors[0] += 1

    async def run() -> dict[str, Any]:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        began = time.monotonic()
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            await asyncio.gather(*(client(http, random.Random(i)) for i in range(concurrency)))
        return {
            **latency_summary(times),
            "seconds": time.monotonic() - began,
            "errors": errors[0],
        }

    hand_back(asyncio.run(run()))


# --------------------------------------------------------------------------- setup


def stream_spec(folder: Path, subject: str | None = None, stream: str | None = None) -> Path:
    """examples/retail-stream's spec (and the retail contracts it names) in ``folder``, on
    ``subject`` and ``stream`` of its own when given (bench/stream_drain.py and
    bench/stream_apply.py start from it too)."""
    shutil.copytree(EXAMPLES / "retail" / "contracts", folder / "retail" / "contracts")
    (folder / "retail-stream").mkdir()
    text = (EXAMPLES / "retail-stream" / "taxiway.yaml").read_text()
    if subject is not None:
        text = text.replace("subject: retail.orders", f"subject: {subject}")
    if stream is not None:
        text = text.replace("stream: RETAIL_ORDERS", f"stream: {stream}")
    spec = folder / "retail-stream" / "taxiway.yaml"
    spec.write_text(text)
    return spec


def setup(folder: Path, customers: int, tag: str) -> Path:
    """The stream example in ``folder``: simulated, published, consumed, trained, materialized."""
    from taxiway.cli import main

    simulate = _simulator()
    simulate.simulate(folder / "retail" / "data", customers=customers)
    spec = stream_spec(folder, f"tw.bench.{tag}", f"TW_BENCH_{tag}")
    orders = folder / "retail" / "data" / "orders.parquet"
    asyncio.run(
        simulate.stream_orders(orders, subject=f"tw.bench.{tag}", stream=f"TW_BENCH_{tag}",
                               backfill=True, duration=0)
    )  # fmt: skip
    consumer = start([sys.executable, "-m", "taxiway", "features", "stream", "-f", str(spec)],
                     folder / "consume.log")  # fmt: skip
    try:
        while asyncio.run(pending(f"TW_BENCH_{tag}")) != 0:
            time.sleep(0.5)
    finally:
        stop(consumer)
    assert main(["train", "-f", str(spec)]) == 0
    assert main(["features", "materialize", "-f", str(spec)]) == 0
    return spec


async def pending(stream: str) -> int:
    """Events the durable has not applied yet (-1 before it exists)."""
    import nats
    import nats.js.errors

    client = await nats.connect(URL)
    try:
        info = await client.jetstream().consumer_info(stream, "taxiway")
        return int(info.num_pending) + int(info.num_ack_pending)
    except nats.js.errors.NotFoundError:
        return -1
    finally:
        await client.close()


async def acked(stream: str) -> int:
    """The stream sequence up to which the durable has acknowledged every event (applied)."""
    import nats

    client = await nats.connect(URL)
    try:
        info = await client.jetstream().consumer_info(stream, "taxiway")
        return int(info.ack_floor.stream_seq) if info.ack_floor else 0
    finally:
        await client.close()


async def delete(stream: str) -> None:
    """Delete ``stream`` and its quarantine stream, where they exist."""
    import nats
    import nats.js.errors

    client = await nats.connect(URL)
    try:
        for name in (stream, f"{stream}_QUARANTINE"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().delete_stream(name)
    finally:
        await client.close()


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def collect(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """SIGTERM a worker of this script and read back what it handed back."""
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    found = handed_back(out.decode(errors="replace"))
    if found is None:
        raise RuntimeError(f"a worker handed nothing back: {out.decode()[-500:]}")
    return found


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> None:
    import psutil

    from taxiway.spec.project import Project
    from taxiway.sprint.freshness import freshness_target, measure_freshness
    from taxiway.sprint.served import running_service

    tag = uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory(prefix="tw-bench-stream-") as name:
        folder = Path(name)
        try:
            began = time.perf_counter()
            spec = setup(folder, args.customers, tag)
            print(f"setup: {time.perf_counter() - began:.0f}s ({args.customers:,} customers)")
            project = Project.load(spec)
            target = freshness_target(project.spec, ["customer_live__live_orders_1d"])
            assert not isinstance(target, str), target
            me = [sys.executable, __file__]
            with running_service(project, 1) as service:
                workers: list[subprocess.Popen[bytes]] = []
                try:
                    consumer = start(
                        [sys.executable, "-m", "taxiway", "features", "stream", "-f", str(spec)],
                        folder / "stream.log",
                    )
                    workers.append(consumer)
                    while asyncio.run(pending(f"TW_BENCH_{tag}")) != 0:
                        time.sleep(0.2)
                    orders = folder / "retail" / "data" / "orders.parquet"
                    publisher = subprocess.Popen(
                        [*me, "--publisher", f"tw.bench.{tag}", str(orders), str(args.rate)],
                        stdout=subprocess.PIPE,
                    )
                    clients = subprocess.Popen(
                        [*me, "--clients", service.url, str(args.concurrency), str(args.customers)],
                        stdout=subprocess.PIPE,
                    )
                    workers += [publisher, clients]
                    ours = [psutil.Process(p.pid) for p in (publisher, clients)]
                    served = [psutil.Process(service.process.pid), psutil.Process(consumer.pid)]
                    time.sleep(args.warmup)
                    cpu0 = {p.pid: sum(p.cpu_times()[:2]) for p in ours + served}
                    load0, other = os.getloadavg()[0], OtherLoad()
                    acked0 = asyncio.run(acked(f"TW_BENCH_{tag}"))
                    found = measure_freshness(
                        project, target, service.url, project.state_dir / "predictions",
                        headers=service.headers, probes=args.probes, timeout_s=args.timeout,
                    )  # fmt: skip
                    wall = other.wall()
                    cpu = {p.pid: sum(p.cpu_times()[:2]) - cpu0[p.pid] for p in ours + served}
                    applied = (asyncio.run(acked(f"TW_BENCH_{tag}")) - acked0) / wall
                    others = other.cores(sum(cpu.values()))
                    lag = asyncio.run(pending(f"TW_BENCH_{tag}"))
                    sent = collect(publisher)
                    asked = collect(clients)
                finally:
                    for worker in workers:
                        stop(worker)
        finally:
            asyncio.run(delete(f"TW_BENCH_{tag}"))
    print(machine())
    print(f"load average at the start of the probes {load0:.2f}; other work {others:.2f} cores")
    print(found.line())
    rate = sent["sent"] / sent["seconds"]
    print(
        f"publisher: {sent['sent']:,} events in {sent['seconds']:.1f}s = {rate:,.0f}/s "
        f"(asked {args.rate:,.0f}/s); the consumer applied {applied:,.0f}/s over the probes; "
        f"its lag at the end: {lag:,} events; "
        f"pending when the probes began: {found.pending_before}"
    )
    print(
        f"/v1/predict during the run ({args.concurrency} clients): {asked['calls']:,} answers "
        f"in {asked['seconds']:.1f}s = {asked['calls'] / asked['seconds']:,.0f}/s, p50 "
        f"{asked['p50']:.1f} ms, p99 {asked['p99']:.1f} ms, {asked['errors']} errors"
    )
    service_cpu, consumer_cpu = cpu[served[0].pid], cpu[served[1].pid]
    events = applied * wall
    per = f"{consumer_cpu / events * 1000:.3f} s per 1,000 applied" if events else "none applied"
    print(
        f"CPU over the {wall:.1f}s of probes: service {service_cpu:.1f}s, consumer "
        f"{consumer_cpu:.1f}s ({consumer_cpu / wall:.2f} cores; {per}), "
        f"publisher {cpu[ours[0].pid]:.1f}s, clients {cpu[ours[1].pid]:.1f}s"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        publish(sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--clients":
        count = int(sys.argv[4])
        load(sys.argv[2], [str(100_001 + i) for i in range(count)], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="events a second")
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a probe waits")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the probes")
    parser.add_argument(
        "--peer", choices=["feast"], help="then Feast's push source at the same rate (its venv)"
    )
    args = parser.parse_args()
    run(args)
    if args.peer == "feast":
        peer(args)


def peer(args: argparse.Namespace) -> None:
    """bench/stream_feast.py in Feast's venv, at the same rate, probes and clients."""
    missing = FEAST_VENV.missing()
    if missing:
        print(f"feast: not run ({missing})")
        return
    print(f"\n--- peer: Feast's push source ({FEAST_VENV.versions('feast')}) ---", flush=True)
    command = [str(FEAST_VENV.python), str(ROOT / "bench" / "stream_feast.py"),
               "--rate", str(args.rate), "--probes", str(args.probes),
               "--timeout", str(args.timeout), "--concurrency", str(args.concurrency),
               "--warmup", str(args.warmup)]  # fmt: skip
    subprocess.run(command, env={**os.environ, **FEAST_VENV.path_env()}, check=False)


if __name__ == "__main__":
    main()
