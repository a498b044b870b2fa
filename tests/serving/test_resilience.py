"""Faults against real server processes: a failing model, a paused Redis, overload, SIGKILL,
a promotion under load, and API keys. Loads are bounded in count and time, on 127.0.0.1 only.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import require_service

from taxiway.cli import main
from taxiway.serving.log import count_records, log_files

from .conftest import Server, free_port, promote, serving, variant

FLAKY = '''
import os, time
import numpy as np

class Flaky:
    """A pilot that fails or stalls while a trigger file exists."""
    feature_names_in_ = np.array(["customer_orders__order_count_30d"])

    def __init__(self, folder):
        self.folder = folder

    def predict_proba(self, frame):
        if os.path.exists(os.path.join(self.folder, "FAIL")):
            raise RuntimeError("the pilot's dependency is down")
        if os.path.exists(os.path.join(self.folder, "SLOW")):
            time.sleep(0.5)
        x = np.nan_to_num(frame.to_numpy(dtype=float)[:, 0])
        p = 1 / (1 + np.exp(x - 1))
        return np.column_stack([1 - p, p])
'''


def _prepare(spec: Path, version: int = 1) -> None:
    assert main(["train", "-f", str(spec), "--json"]) in (0, 1)
    promote(spec, version)
    assert main(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"]) == 0


@pytest.fixture(scope="module")
def flaky(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shop whose production model is a pilot that fails or stalls on demand."""
    folder = tmp_path_factory.mktemp("flaky")
    (folder / "flaky_pilot.py").write_text(FLAKY)
    sys.path.insert(0, str(folder))
    try:
        flaky_pilot = importlib.import_module("flaky_pilot")  # written above, not on mypy's path
        (folder / "pilot.pkl").write_bytes(pickle.dumps(flaky_pilot.Flaky(str(folder))))
        text = shop.read_text().replace(
            "model:\n  algorithm: lightgbm", "model:\n  pilot: pilot.pkl\n  algorithm: lightgbm"
        )
        spec = variant(
            shop,
            folder,
            text,
            serving="  breaker: {failures: 3, reset_after: 1s}\n  max_in_flight: 2\n",
        )
        _prepare(spec)
    finally:
        sys.path.remove(str(folder))
    return spec


@pytest.fixture
def flaky_server(flaky: Path) -> Iterator[Server]:
    for trigger in ("FAIL", "SLOW"):
        (flaky.parent / trigger).unlink(missing_ok=True)
    with serving(flaky, env={"PYTHONPATH": str(flaky.parent)}) as running:
        yield running


def test_a_failing_model_falls_back_and_opens_the_breaker(
    flaky: Path, flaky_server: Server
) -> None:
    body = {"entities": {"customer": "100017"}}
    with flaky_server.client() as client:
        assert client.post("/v1/predict", json=body).json()["path"] == "model"
        (flaky.parent / "FAIL").touch()
        answers = [client.post("/v1/predict", json=body).json() for _ in range(6)]
        assert all(a["degraded"] and a["path"] == "fallback:baseline" for a in answers)
        assert [a["reason"] for a in answers[:3]] == ["model failed: RuntimeError"] * 3
        assert answers[-1]["reason"] == "model circuit breaker open"
        assert 'taxiway_circuit_open{breaker="model"} 1.0' in client.get("/metrics").text
        (flaky.parent / "FAIL").unlink()
        time.sleep(1.2)  # reset_after: the next request is the probe
        assert client.post("/v1/predict", json=body).json()["path"] == "model"
        metrics = client.get("/metrics").text
    assert 'taxiway_circuit_open{breaker="model"} 0.0' in metrics
    assert 'taxiway_fallbacks_total{reason="breaker_open",which="baseline"}' in metrics


def test_a_model_that_overruns_is_answered_within_the_budget(
    flaky: Path, flaky_server: Server
) -> None:
    (flaky.parent / "SLOW").touch()
    with flaky_server.client() as client:
        began = time.perf_counter()
        answer = client.post("/v1/predict", json={"entities": {"customer": "100017"}}).json()
        wall_ms = (time.perf_counter() - began) * 1000
    assert answer["degraded"] is True
    assert answer["reason"] == "model overran the latency budget"
    # the 50 ms budget holds (slack for a loaded CI machine); the 500 ms stall is abandoned
    assert answer["latency_ms"] <= 50 * 1.5
    assert wall_ms < 400


def test_overload_is_shed_with_429_and_retry_after(flaky: Path, flaky_server: Server) -> None:
    (flaky.parent / "SLOW").touch()  # each request holds its slot until the 50 ms deadline
    statuses: list[int] = []
    retry: list[str | None] = []

    # every client connects first, then all post at once: the requests overlap even on a
    # loaded machine where starting 24 threads takes longer than a 50 ms slot
    ready = threading.Barrier(24)

    def fire() -> None:
        with httpx.Client(base_url=flaky_server.url, timeout=10) as client:
            assert client.get("/v2/health/live").status_code == 200  # the connection is open
            ready.wait(timeout=30)
            response = client.post("/v1/predict", json={"entities": {"customer": "100017"}})
            statuses.append(response.status_code)
            retry.append(response.headers.get("retry-after"))

    threads = [threading.Thread(target=fire) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 429 in statuses
    assert 200 in statuses
    assert set(statuses) <= {200, 429}
    assert all(r == "1" for s, r in zip(statuses, retry, strict=True) if s == 429)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A Redis of the test's own on a free port (the shared one is never paused)."""
    require_service("Redis", "127.0.0.1", 6379)  # the machine has Redis installed and running
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with httpx.Client() as _:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield port, process
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()


def test_redis_paused_mid_run_degrades_within_budget_and_recovers(
    shop: Path, tmp_path: Path, redis_server: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, redis = redis_server
    text = shop.read_text() + (
        f"\nonline_store:\n  kind: redis\n  url: redis://127.0.0.1:{port}/0\n  timeout_ms: 500\n"
    )
    spec = variant(shop, tmp_path, text, serving="  breaker: {failures: 3, reset_after: 1s}\n")
    assert (
        main(
            [
                "features",
                "materialize",
                "-f",
                str(spec),
                "--as-of",
                "2025-12-31",
                "--state-dir",
                str(shop.parent / ".taxiway"),
            ]
        )
        == 0
    )
    state = ["--state-dir", str(shop.parent / ".taxiway")]
    with serving(spec, *state) as server, server.client() as client:
        body = {"entities": {"customer": "100017"}}
        healthy = client.post("/v1/predict", json=body).json()
        assert healthy["path"] == "model"
        redis.send_signal(signal.SIGSTOP)
        degraded = []
        for _ in range(8):
            began = time.perf_counter()
            degraded.append(
                (client.post("/v1/predict", json=body).json(), time.perf_counter() - began)
            )
        assert all(a["degraded"] for a, _ in degraded)
        assert {a["path"] for a, _ in degraded} == {"fallback:baseline"}
        # within the 50 ms budget (slack for a loaded machine), never the store's 500 ms timeout
        assert max(a["latency_ms"] for a, _ in degraded) <= 50 * 1.5
        assert max(wall for _, wall in degraded) < 0.4
        assert degraded[0][0]["reason"] == "online store timed out"
        assert degraded[-1][0]["reason"] == "online store circuit breaker open"
        redis.send_signal(signal.SIGCONT)
        time.sleep(1.2)
        recovered = client.post("/v1/predict", json=body).json()
        assert recovered["path"] == "model"
        assert recovered["prediction"] == pytest.approx(healthy["prediction"])


def test_sigkill_under_load_loses_no_acknowledged_prediction(shop: Path, tmp_path: Path) -> None:
    spec = variant(shop, tmp_path, serving=f"  log: {{path: {tmp_path / 'log'}}}\n")
    acked: list[str] = []
    stop = threading.Event()
    with serving(spec, "--state-dir", str(shop.parent / ".taxiway")) as server:

        def load(worker: int) -> None:
            with httpx.Client(base_url=server.url, timeout=5) as client:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        response = client.post(
                            "/v1/predict",
                            json={"entities": {"customer": str(100001 + (worker * 997 + i) % 400)}},
                        )
                    except httpx.TransportError:
                        return
                    if response.status_code == 200:
                        acked.append(response.json()["request_id"])

        threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acked) < 1500 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join()
    assert len(acked) >= 500
    logged: set[str] = set()
    import orjson

    for path in log_files(tmp_path / "log"):
        for line in path.read_bytes().splitlines():
            try:
                logged.add(orjson.loads(line)["request_id"])
            except orjson.JSONDecodeError:
                continue  # a torn last line: written, never acknowledged
    missing = set(acked) - logged
    assert not missing, f"{len(missing)} acknowledged predictions are not in the log"
    assert count_records(tmp_path / "log") >= len(acked)


def test_promotion_under_load_swaps_the_model_with_no_failed_request(
    shop: Path, tmp_path: Path
) -> None:
    spec = variant(shop, tmp_path)  # its own state: its own registry and store
    _prepare(spec)
    # version 2 is trained before the load starts (a candidate, not served): what runs under
    # the load is the promotion and the swap, not a training competing with the clients
    assert main(["train", "-f", str(spec), "--json"]) == 0
    results: list[tuple[int, int | None]] = []
    stop = threading.Event()
    with serving(spec) as server:

        def load() -> None:
            with httpx.Client(base_url=server.url, timeout=5) as client:
                while not stop.is_set():
                    try:
                        response = client.post(
                            "/v1/predict", json={"entities": {"customer": "100017"}}
                        )
                        version = (
                            response.json().get("model_version")
                            if response.status_code == 200
                            else None
                        )
                        results.append((response.status_code, version))
                    except httpx.TransportError:
                        results.append((0, None))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(v == 1 for _, v in results) < 50:
            time.sleep(0.05)  # the clients are answered by version 1 before the promotion
        promote(spec, 2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v == 2 for _, v in results[-20:]):
            time.sleep(0.1)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
    statuses = {status for status, _ in results}
    assert statuses == {200}, f"failed requests during the swap: {statuses}"
    versions = [v for _, v in results]
    assert versions[0] == 1
    assert versions[-1] == 2


def test_api_keys_and_roles(shop: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("predictor-key-0123456789 predict\nrecorder-key-0123456789 outcomes\n")
    spec = variant(shop, tmp_path, serving=f"  auth: {{keys_file: {keys}}}\n")
    with (
        serving(spec, "--state-dir", str(shop.parent / ".taxiway")) as server,
        server.client() as client,
    ):
        body = {"entities": {"customer": "100017"}}
        assert client.post("/v1/predict", json=body).status_code == 401
        assert (
            client.post(
                "/v1/predict", json=body, headers={"X-API-Key": "wrong-key-0123456789"}
            ).status_code
            == 401
        )
        assert (
            client.post(
                "/v1/predict", json=body, headers={"X-API-Key": "recorder-key-0123456789"}
            ).status_code
            == 403
        )
        ok = client.post(
            "/v1/predict", json=body, headers={"Authorization": "Bearer predictor-key-0123456789"}
        )
        assert ok.status_code == 200
        outcome = {"request_id": ok.json()["request_id"], "name": "churned", "value": 0}
        assert (
            client.post(
                "/v1/outcomes", json=outcome, headers={"X-API-Key": "predictor-key-0123456789"}
            ).status_code
            == 403
        )
        assert (
            client.post(
                "/v1/outcomes", json=outcome, headers={"X-API-Key": "recorder-key-0123456789"}
            ).status_code
            == 200
        )
        assert client.get("/v2/health/ready").status_code == 200  # health stays open
    assert "0123456789" not in server.output()  # keys never logged


def _answered_by(folder: Path) -> dict[int, int]:
    """Records in the log per worker pid (the default worker name starts with the pid)."""
    counts: dict[int, int] = {}
    for path in log_files(folder):
        pid = int(path.name.split("-")[1])
        counts[pid] = counts.get(pid, 0) + len(path.read_bytes().splitlines())
    return counts


def _burst(url: str, connections: int, requests: int) -> list[int]:
    """``connections`` keep-alive clients at once, ``requests`` each: the status codes."""
    statuses: list[int] = []

    def client(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for i in range(requests):
                body = {"entities": {"customer": str(100001 + (worker * 31 + i) % 400)}}
                for _ in range(3):  # a connection the kill cut is opened again
                    try:
                        statuses.append(http.post("/v1/predict", json=body).status_code)
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_two_workers_share_connections_and_a_killed_worker_is_replaced(
    shop: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "log"
    spec = variant(shop, tmp_path, serving=f"  log: {{path: {folder}}}\n")
    state = str(shop.parent / ".taxiway")
    with serving(spec, "--workers", "2", "--state-dir", state) as server:
        statuses = _burst(server.url, connections=16, requests=10)
        assert statuses == [200] * 160
        first = _answered_by(folder)
        # the supervisor hands connections round robin: 8 each, 80 answers each
        assert sorted(first.values()) == [80, 80], first
        victim = max(first, key=first.__getitem__)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(_answered_by(folder)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # the new worker opens its own log file when it starts
        assert len(_answered_by(folder)) == 3, server.output()
        assert "restarting it" in server.output()
        time.sleep(1.0)  # the new worker's socket is listening once it is ready
        statuses = _burst(server.url, connections=16, requests=10)
        assert statuses == [200] * 160, server.output()
        after = _answered_by(folder)
        replacement = set(after) - set(first)
        assert sum(after[pid] for pid in replacement) > 0, after


def test_an_injected_store_fault_degrades_every_answer_within_the_budget(
    shop: Path, tmp_path: Path
) -> None:
    spec = variant(shop, tmp_path)
    state = str(shop.parent / ".taxiway")
    env = {"TAXIWAY_FAULTS": "online_store=down"}
    with serving(spec, "--state-dir", state, env=env) as server, server.client() as client:
        answers = [
            client.post("/v1/predict", json={"entities": {"customer": str(100001 + i)}}).json()
            for i in range(20)
        ]
        metrics = client.get("/metrics").text
    assert {a["path"] for a in answers} == {"fallback:baseline"}
    assert all(a["degraded"] for a in answers)
    assert max(a["latency_ms"] for a in answers) < 50
    assert 'taxiway_fault_injected{mode="down",target="online_store"} 1.0' in metrics


def test_an_unknown_fault_stops_the_service_with_the_known_ones(shop: Path, tmp_path: Path) -> None:
    spec = variant(shop, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "taxiway", "serve", "-f", str(spec), "--port", str(free_port()),
         "--state-dir", str(shop.parent / ".taxiway")],
        env={**os.environ, "TAXIWAY_FAULTS": "online_store=flaky"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "unknown fault" in result.stderr
    assert "online_store=down" in result.stderr
    assert "Traceback" not in result.stderr
