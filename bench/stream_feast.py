"""Feast's push source, the peer of bench/stream.py: a row pushed to Feast's feature server
(``POST /push``, to the online store) -> the value its ``/get-online-features`` serves, while
a pusher sends ``--rate`` rows a second and clients keep the server busy. Runs inside Feast's
own venv (``bench/.data/feast-venv``; ``bench/online_lookup.py --setup`` creates it):

    bench/.data/feast-venv/bin/python bench/stream_feast.py [--rate 500] [--probes 30]
                                                           [--concurrency 4] [--warmup 5]

The repository: one int64 entity, a push source over a one-row Parquet batch source, a view
``live`` (``amount``, ttl 1 day), SQLite online store; ``feast serve -w 1 --max-requests 0
--no-access-log`` on loopback (one worker, as taxiway's; never recycled). The pusher posts a batch of rows every 10 ms (random keys of 2,000); the probes,
one after another, read a fresh key, push one row for it and poll ``/get-online-features``
every 10 ms until the pushed value is served (as bench/stream.py's probes do).

What differs from taxiway's path, and why the figures are not a like-for-like race: Feast's
``/push`` writes the online store inside the request (no broker, no journal, no history, no
contract check); taxiway's event goes through NATS JetStream, a durable consumer that checks,
journals and tiles it exactly once, and the service's read. Same machine, same rate, same
probe method.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from toolkit import OtherLoad, hand_back, handed_back, latency_summary, machine  # noqa: E402

KEYS = 2000


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def repository(repo: Path) -> None:
    """The Feast repository: feature_store.yaml, the definitions applied."""
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Float64

    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        f"project: bench_stream\nprovider: local\nregistry: {repo / 'registry.db'}\n"
        f"online_store: {{type: sqlite, path: {repo / 'online.db'}}}\n"
        "offline_store: {type: file}\nentity_key_serialization_version: 3\n"
    )
    seed = repo / "seed.parquet"
    pd.DataFrame(
        {"entity_id": [1], "amount": [1.0], "event_timestamp": [pd.Timestamp.now(tz="UTC")]}
    ).to_parquet(seed)
    entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    batch = FileSource(path=str(seed), timestamp_field="event_timestamp")
    push = PushSource(name="orders_push", batch_source=batch)
    view = FeatureView(
        name="live",
        entities=[entity],
        ttl=timedelta(days=1),
        schema=[Field(name="amount", dtype=Float64)],
        source=push,
        online=True,
    )
    FeatureStore(repo_path=str(repo)).apply([entity, push, view])


def pusher(url: str, rate: float) -> None:
    """``rate`` rows a second to /push until SIGTERM; hands back what it pushed."""
    import requests

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rng = random.Random(18)
    session = requests.Session()
    sent, errors, began = 0, 0, time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - began) * rate) - sent
        if due > 0:
            now = _now()
            df = {
                "entity_id": [rng.randrange(1, KEYS + 1) for _ in range(due)],
                "amount": [round(rng.uniform(1, 200), 2) for _ in range(due)],
                "event_timestamp": [now] * due,
            }
            answer = session.post(
                f"{url}/push", json={"push_source_name": "orders_push", "df": df, "to": "online"}
            )
            errors += answer.status_code != 200
            sent += due
        time.sleep(0.01)
    hand_back({"sent": sent, "seconds": time.monotonic() - began, "errors": errors})


def clients(url: str, concurrency: int) -> None:
    """``concurrency`` clients reading one random key each call until SIGTERM."""
    import requests

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    times: list[float] = []
    began = time.monotonic()

    def client(seed: int) -> None:
        rng, session = random.Random(seed), requests.Session()
        while not stop.is_set():
            t0 = time.perf_counter()
            session.post(f"{url}/get-online-features", json=_read(rng.randrange(1, KEYS + 1)))
            times.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    while not stop.is_set():
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    hand_back({**latency_summary(times), "seconds": time.monotonic() - began})


def _read(key: int) -> dict[str, Any]:
    return {"features": ["live:amount"], "entities": {"entity_id": [key]}}


def _served(session: Any, url: str, key: int) -> float | None:
    """The ``amount`` served for ``key`` (None when absent)."""
    answer = session.post(f"{url}/get-online-features", json=_read(key)).json()
    names = (answer.get("metadata") or {}).get("feature_names") or []
    if "amount" not in names:
        return None
    result = answer["results"][names.index("amount")]
    value = (result.get("values") or [None])[0]
    present = (result.get("statuses") or ["PRESENT"])[0] == "PRESENT"
    if present and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def probe(url: str, probes: int, timeout_s: float) -> list[float | None]:
    """Each probe: push one row for a fresh key, poll until its value is served (seconds)."""
    import requests

    session = requests.Session()
    out: list[float | None] = []
    for i in range(probes):
        key = -(i + 1) - random.randrange(10**9) * 1000
        value = 1000.0 + i
        _served(session, url, key)  # the baseline read, as taxiway's probes make one
        df = {"entity_id": [key], "amount": [value], "event_timestamp": [_now()]}
        t0 = time.perf_counter()
        session.post(
            f"{url}/push", json={"push_source_name": "orders_push", "df": df, "to": "online"}
        )
        seen = None
        while time.perf_counter() - t0 < timeout_s:
            if _served(session, url, key) == value:
                seen = time.perf_counter() - t0
                break
            time.sleep(0.01)
        out.append(seen)
    return out


def collect(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    found = handed_back(out.decode(errors="replace"))
    if found is None:
        raise RuntimeError(f"a worker handed nothing back: {out.decode()[-500:]}")
    return found


def run(args: argparse.Namespace) -> None:
    import psutil
    import requests

    with tempfile.TemporaryDirectory(prefix="tw-bench-feast-stream-") as name:
        repo = Path(name) / "repo"
        repository(repo)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        feast = Path(sys.executable).parent / "feast"
        kept = HERE / ".data" / "stream_feast"
        kept.mkdir(parents=True, exist_ok=True)
        log = (kept / "serve.log").open("wb")  # kept: the server's output when it fails
        server = subprocess.Popen(
            # one worker, never recycled (its default restarts a worker every ~1,000
            # requests, dropping the connections in flight), no access log (taxiway has none)
            [str(feast), "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port),
             "-w", "1", "--max-requests", "0", "--no-access-log"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "FEAST_USAGE": "False"},
        )  # fmt: skip
        workers: list[subprocess.Popen[bytes]] = []
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(
                        f"feast serve not ready: {(kept / 'serve.log').read_text()[-800:]}"
                    )
                time.sleep(0.3)
            me = [sys.executable, __file__]
            push = subprocess.Popen([*me, "--pusher", url, str(args.rate)], stdout=subprocess.PIPE)
            load = subprocess.Popen(
                [*me, "--clients", url, str(args.concurrency)], stdout=subprocess.PIPE
            )
            workers += [push, load]
            time.sleep(args.warmup)
            watched = [psutil.Process(p.pid) for p in (server, push, load)]
            watched += psutil.Process(server.pid).children(recursive=True)
            cpu0 = {p.pid: sum(p.cpu_times()[:2]) for p in watched}
            load0, other = os.getloadavg()[0], OtherLoad()
            seen = probe(url, args.probes, args.timeout)
            wall = other.wall()
            cpu = {p.pid: sum(p.cpu_times()[:2]) - cpu0[p.pid] for p in watched}
            others = other.cores(sum(cpu.values()))
            sent, asked = collect(push), collect(load)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            log.close()
    served = sorted(s * 1000 for s in seen if s is not None)
    print(machine())
    print(f"load average at the start of the probes {load0:.2f}; other work {others:.2f} cores")
    if served:
        summary = latency_summary(served)
        print(
            f"feast push freshness: {len(served)} of {len(seen)} probe rows served, push to "
            f"served value p50 {summary['p50']:.0f} ms, p99 {summary['p99']:.0f} ms, max "
            f"{summary['max']:.0f} ms (polled every 10 ms)"
        )
    else:
        print(f"feast push freshness: 0 of {len(seen)} probe rows served within {args.timeout:g}s")
    print(
        f"pusher: {sent['sent']:,} rows in {sent['seconds']:.1f}s = "
        f"{sent['sent'] / sent['seconds']:,.0f}/s (asked {args.rate:,.0f}/s), "
        f"{sent['errors']} failed pushes"
    )
    print(
        f"/get-online-features meanwhile ({args.concurrency} clients): {asked['calls']:,} in "
        f"{asked['seconds']:.1f}s, p50 {asked['p50']:.1f} ms, p99 {asked['p99']:.1f} ms"
    )
    server_cpu = sum(v for pid, v in cpu.items() if pid not in (push.pid, load.pid))
    print(
        f"CPU over the {wall:.1f}s of probes: feast serve {server_cpu:.1f}s, pusher "
        f"{cpu[push.pid]:.1f}s, clients {cpu[load.pid]:.1f}s"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--pusher":
        pusher(sys.argv[2], float(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--clients":
        clients(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="rows a second")
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=5.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
