"""Serving replicas on shared state: three `taxiway serve` processes on their own ports (standing
in for machines) share Redis (online store), PostgreSQL (registry, rollout state, sign-off log)
and one prediction-log folder. A promotion made with the CLI reaches every replica within
seconds; a replica killed with SIGKILL under load loses no acknowledged prediction, and the
others keep answering within the latency budget.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from ruamel.yaml import YAML
from tests.conftest import require_service

from taxiway.cli import main
from taxiway.serving.log import log_files

from .conftest import Server, promote, serving, variant

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REPLICAS = 3
PROMOTION_BOUND_S = 6.0
"""A replica polls the registry every 2 s (``reload_interval_s``), then loads the version:
every replica answers with a promoted version within a few seconds (slack for a loaded box)."""
BUDGET_MS = 50.0


@dataclass
class Tally:
    """What the load client saw, per replica: acknowledged request ids and versions."""

    acked: dict[str, list[tuple[float, str, int]]] = field(default_factory=dict)
    latency_ms: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    failures: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, url: str, request_id: str, version: int, latency_ms: float) -> None:
        now = time.monotonic()
        with self.lock:
            self.acked.setdefault(url, []).append((now, request_id, version))
            self.latency_ms.setdefault(url, []).append((now, latency_ms))

    def fail(self, url: str, status: int) -> None:
        with self.lock:
            self.failures.setdefault(url, []).append((time.monotonic(), status))

    def versions_since(self, url: str, since: float) -> set[int]:
        with self.lock:
            return {v for t, _, v in self.acked.get(url, []) if t >= since}


@contextlib.contextmanager
def load(servers: list[Server], tally: Tally, per_replica: int = 2) -> Iterator[threading.Event]:
    """Clients posting predictions to every replica until the event is set."""
    stop = threading.Event()

    def client(server: Server, n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            i = 0
            while not stop.is_set():
                i += 1
                customer = str(100001 + (n * 997 + i) % 400)
                try:
                    response = http.post("/v1/predict", json={"entities": {"customer": customer}})
                except httpx.TransportError:
                    tally.fail(server.url, 0)
                    if server.process.poll() is not None:
                        return  # the replica is dead: this client stops, the others go on
                    continue
                if response.status_code == 200:
                    body = response.json()
                    tally.ack(
                        server.url, body["request_id"], body["model_version"], body["latency_ms"]
                    )
                else:
                    tally.fail(server.url, response.status_code)

    threads = [
        threading.Thread(target=client, args=(server, n))
        for server in servers
        for n in range(per_replica)
    ]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _probe_as_the_manifests_do(server: Server) -> None:
    """deploy/k8s's probe paths answer 200 on a ready replica, and /metrics has the counter the
    HPA's prometheus-adapter rule reads, for the prediction route."""
    deploy = Path(__file__).parents[2] / "deploy" / "k8s"
    yaml = YAML(typ="safe", pure=True)
    [container] = yaml.load(deploy / "deployment.yaml")["spec"]["template"]["spec"]["containers"]
    [rule] = yaml.load(deploy / "prometheus-adapter.yaml")["rules"]["custom"]
    series = rule["name"]["matches"].strip("^$")
    with server.client() as http:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert http.get(container[probe]["httpGet"]["path"]).status_code == 200
        assert (
            http.post("/v1/predict", json={"entities": {"customer": "100017"}}).status_code == 200
        )
        exposed = http.get("/metrics").text
    assert f'{series}{{route="/v1/predict",status="200"}}' in exposed, exposed


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own on the shared server, deleted after."""
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    prefix = f"taxiway-test:replicas-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_replicas_share_state_follow_a_promotion_and_survive_a_killed_peer(
    shop: Path,
    tmp_path: Path,
    postgres_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = f"replicas_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TW_REPLICAS_REGISTRY_URL", postgres_url)
    monkeypatch.setenv("TW_REPLICAS_REDIS_URL", "redis://127.0.0.1:6379/0")
    shared_log = tmp_path / "shared-log"
    text = shop.read_text() + (
        "\nregistry:\n  kind: postgres\n  url: ${TW_REPLICAS_REGISTRY_URL}\n"
        f"  schema: {schema}\n  artifacts: {tmp_path / 'artifacts'}\n"
        "online_store:\n  kind: redis\n  url: ${TW_REPLICAS_REDIS_URL}\n"
        f"  prefix: {redis_prefix}\n  timeout_ms: 200\n"
    )
    spec = variant(shop, tmp_path, text, serving=f"  log: {{path: {shared_log}}}\n")
    assert main(["train", "-f", str(spec), "--json"]) in (0, 1)
    promote(spec, 1)
    assert main(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"]) == 0
    assert main(["train", "-f", str(spec), "--json"]) in (0, 1)  # version 2, not promoted

    tally = Tally()
    with contextlib.ExitStack() as stack:
        # each replica its own state folder: nothing is shared but Redis, PostgreSQL, the log
        servers = [
            stack.enter_context(serving(spec, "--state-dir", str(tmp_path / f"state-{i}")))
            for i in range(REPLICAS)
        ]
        _probe_as_the_manifests_do(servers[0])
        with load(servers, tally):
            time.sleep(1.0)
            for server in servers:
                assert tally.versions_since(server.url, 0.0) == {1}, server.output()

            # a promotion via the CLI (the gate's blockers overridden, as recorded) reaches all
            promoted = time.monotonic()
            assert (
                main(
                    [
                        "models",
                        "promote",
                        "2",
                        "-f",
                        str(spec),
                        "--force",
                        "--reason",
                        "replicas test",
                        "--by",
                        "tests",
                    ]
                )
                == 0
            )
            reached: dict[str, float] = {}
            deadline = promoted + 30
            while len(reached) < REPLICAS and time.monotonic() < deadline:
                for server in servers:
                    if server.url not in reached and 2 in tally.versions_since(
                        server.url, promoted
                    ):
                        reached[server.url] = time.monotonic() - promoted
                time.sleep(0.05)
            assert len(reached) == REPLICAS, f"not every replica serves v2: {reached}"
            assert max(reached.values()) < PROMOTION_BOUND_S, reached
            print(f"promotion seen by each replica after (s): {sorted(reached.values())}")
            time.sleep(0.5)
            for server in servers:  # and none went back
                assert tally.versions_since(server.url, time.monotonic() - 0.3) == {2}

            # kill -9 one replica under load; the others keep answering within the budget
            victim, survivors = servers[0], servers[1:]
            os.killpg(victim.process.pid, signal.SIGKILL)
            victim.process.wait()
            killed = time.monotonic()
            time.sleep(2.0)
            after_kill = {s.url: len(tally.versions_since(s.url, killed)) for s in survivors}
        for server in survivors:
            with server.client() as http:
                answers = [
                    http.post("/v1/predict", json={"entities": {"customer": "100017"}})
                    for _ in range(20)
                ]
            assert {a.status_code for a in answers} == {200}
            bodies = [a.json() for a in answers]
            assert {b["model_version"] for b in bodies} == {2}
            assert all(not b["degraded"] for b in bodies), bodies
            latencies = sorted(b["latency_ms"] for b in bodies)
            assert latencies[len(latencies) // 2] <= BUDGET_MS, latencies

    assert all(n > 0 for n in after_kill.values()), after_kill
    for server in survivors:  # no survivor refused a request after the kill, and within budget
        assert not [s for t, s in tally.failures.get(server.url, []) if t >= killed]
        served = sorted(ms for t, ms in tally.latency_ms[server.url] if t >= killed)
        print(
            f"{server.url} after the kill: {len(served)} answers, p50 {served[len(served) // 2]}"
            f" ms, p99 {served[len(served) * 99 // 100]} ms (service-side)"
        )
        assert served[len(served) // 2] <= BUDGET_MS, served

    # every acknowledged prediction, of every replica (the killed one too), is in the shared log
    acked = {rid for answers in tally.acked.values() for _, rid, _ in answers}
    assert len(acked) >= 300
    logged: set[str] = set()
    writers: set[str] = set()
    for path in log_files(shared_log):
        writers.add(path.name.rsplit("-", 2)[0])
        for line in path.read_bytes().splitlines():
            try:
                logged.add(orjson.loads(line)["request_id"])
            except orjson.JSONDecodeError:
                continue  # a torn last line of the killed replica: written, never acknowledged
    print(f"{len(acked)} acknowledged, {len(logged)} logged, writers {sorted(writers)}")
    missing = acked - logged
    assert not missing, f"{len(missing)} acknowledged predictions are not in the shared log"
    assert len(writers) >= REPLICAS, f"the replicas' log files collide: {sorted(writers)}"
