"""Fault drills on the path production uses, for both online stores.

A store broken by ``TAXIWAY_FAULTS`` is read the way the real one is (the same function, on
the same thread and event loop); ``down`` and ``slow`` are drilled on SQLite and on a real
Redis through real `taxiway serve` processes, and every answer must come degraded within the
latency budget; a SQLite file another process holds locked cannot hold a request past it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import uuid4

import httpx
import pytest
from tests.conftest import require_service, sqlite_locked

from taxiway.errors import ServingError
from taxiway.features.online import SqliteStore, open_online_store
from taxiway.serving.app import build_app
from taxiway.serving.faults import ENV as FAULTS_ENV
from taxiway.serving.service import Service
from taxiway.spec.project import Project

from .conftest import Server, serving, variant

REDIS_URL = "redis://127.0.0.1:6379/0"
BUDGET_MS = 50.0  # the retail example's serving.latency_budget_ms
# every read reaches the broken store: the breaker (5 failures by default) never opens
NO_BREAKER = "  breaker: {failures: 100000, reset_after: 1s}\n"


def _state(shop: Path) -> str:
    return str(shop.parent / ".taxiway")


@pytest.fixture(scope="module")
def redis_prefix(shop: Path) -> Iterator[str]:
    """The shop's materialized SQLite store copied into the real Redis under a fresh prefix."""
    require_service("Redis", "127.0.0.1", 6379)
    from taxiway.features.online import RedisStore

    prefix = f"tw-test:{uuid4().hex}"
    sqlite = open_online_store(None, state_dir=Path(_state(shop)), namespace="shop")
    with sqlite3.connect(Path(_state(shop)) / "online.sqlite") as raw:
        keys = [key for (key,) in raw.execute("SELECT key FROM feature_vectors")]
    redis = RedisStore(REDIS_URL, prefix, 2_000)
    stored = sqlite.read("customer", keys)
    redis.write("customer", [(k, v) for k, views in stored.items() for v in views])
    sqlite.close()
    yield prefix
    redis.clear()
    redis.close()


def _spec(shop: Path, folder: Path, backend: str, prefix: str | None, serving: str = "") -> Path:
    text = shop.read_text()
    if backend == "redis":
        text += f"\nonline_store:\n  kind: redis\n  url: {REDIS_URL}\n  prefix: {prefix}\n"
    log = f"  log: {{path: {folder / 'log'}}}\n"
    return variant(shop, folder, text, serving=log + serving)


# ------------------------------------------------------------------ the same read path


def _reads_and_answers(spec: Path, state: str) -> tuple[set[tuple[str, str]], list[Any]]:
    """Five predictions through the real app in this process, and every online-store read
    they made: (function name, where it ran: ``loop`` = the event loop's own thread with the
    loop running, else ``thread``), seen with a profiler, not by replacing any of our code."""
    seen: set[tuple[str, str]] = set()
    loop_thread = threading.get_ident()
    stores = str(Path("taxiway") / "features" / "online")

    def profile(frame: FrameType, event: str, _: object) -> None:
        code = frame.f_code
        ours = stores in code.co_filename or code.co_filename.endswith("faults.py")
        if event == "call" and code.co_name in ("read", "read_records", "aread") and ours:
            on_loop = threading.get_ident() == loop_thread and _loop_running()
            # read_records: the same synchronous read, as records (what a lookup asks for)
            name = "aread" if code.co_name == "aread" else "read"
            seen.add((name, "loop" if on_loop else "thread"))

    async def run() -> list[Any]:
        service = Service(Project.load(spec, Path(state)), reload_interval_s=0)
        transport = httpx.ASGITransport(app=build_app(service))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                threading.setprofile(profile)  # threads the service starts from now on
                sys.setprofile(profile)
                try:
                    return [
                        (
                            await client.post("/v1/predict", json={"entities": {"customer": c}})
                        ).json()
                        for c in ("100017", "100018", "100019", "100020", "100021")
                    ]
                finally:
                    sys.setprofile(None)
                    threading.setprofile(None)
        finally:
            await service.stop()

    answers = asyncio.run(run())
    return seen, answers


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("mode", ["down", "slow"])
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_broken_store_is_read_on_the_same_path_as_the_real_one(
    shop: Path,
    tmp_path: Path,
    backend: str,
    mode: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = request.getfixturevalue("redis_prefix") if backend == "redis" else None
    spec = _spec(shop, tmp_path, backend, prefix)
    monkeypatch.delenv("TAXIWAY_FAULTS", raising=False)
    real_reads, real = _reads_and_answers(spec, _state(shop))
    monkeypatch.setenv("TAXIWAY_FAULTS", f"online_store={mode}")
    faulty_reads, faulty = _reads_and_answers(spec, _state(shop))

    # SQLite is read in place on the loop; Redis is awaited on the loop (no thread hop)
    expected = {("read", "loop")} if backend == "sqlite" else {("aread", "loop")}
    assert real_reads == expected
    assert faulty_reads == real_reads
    assert [a["path"] for a in real] == ["model"] * 5
    assert all(a["degraded"] and a["path"] == "fallback:baseline" for a in faulty)


# ------------------------------------------------------------------ the drills


def _predict_concurrently(server: Server, requests: int, clients: int) -> list[tuple[Any, float]]:
    """``requests`` predictions from each of ``clients`` keep-alive clients at once:
    (answer, seconds the client waited)."""
    results: list[tuple[Any, float]] = []

    def client(worker: int) -> None:
        with server.client() as http:
            for i in range(requests):
                body = {"entities": {"customer": str(100001 + (worker * 37 + i) % 400)}}
                began = time.perf_counter()
                answer = http.post("/v1/predict", json=body).json()
                results.append((answer, time.perf_counter() - began))

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def assert_within_budget(answers: list[Any], results: list[tuple[Any, float]]) -> None:
    """The service's own latencies within the budget: all but a few, and those few close.

    The machine is shared by the clients, the server and other work; a process that waits
    for a core can overrun a 50 ms budget by a scheduling slice now and then, so 95% must be
    within it and none past 1.5 times it. As the clients saw them (their own cost included):
    all under 250 ms, where a read waiting for its store would take seconds.
    """
    latencies = sorted(a["latency_ms"] for a in answers)
    within = sum(1 for ms in latencies if ms <= BUDGET_MS) / len(latencies)
    assert within >= 0.95, latencies
    assert latencies[-1] <= BUDGET_MS * 1.5, latencies
    assert max(wall for _, wall in results) < 0.25


def _mean_store_ms(metrics: str) -> float:
    """The mean online-store read time the service reported in its /metrics."""

    def value(name: str) -> float:
        found = re.search(rf"^taxiway_online_store_latency_seconds_{name} (\S+)$", metrics, re.M)
        assert found is not None, metrics
        return float(found[1])

    return value("sum") / value("count") * 1000


@pytest.mark.parametrize("mode", ["down", "slow"])
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_the_drill_answers_every_request_degraded_within_the_budget(
    shop: Path, tmp_path: Path, backend: str, mode: str, request: pytest.FixtureRequest
) -> None:
    prefix = request.getfixturevalue("redis_prefix") if backend == "redis" else None
    spec = _spec(shop, tmp_path, backend, prefix, serving=NO_BREAKER)
    env = {"TAXIWAY_FAULTS": f"online_store={mode}"}
    with serving(spec, "--state-dir", _state(shop), env=env) as server:
        results = _predict_concurrently(server, requests=15, clients=4)
        with server.client() as client:
            metrics = client.get("/metrics").text

    answers = [answer for answer, _ in results]
    assert len(answers) == 60
    assert all(a["degraded"] and a["path"] == "fallback:baseline" for a in answers), answers
    assert_within_budget(answers, results)
    waited = _mean_store_ms(metrics)
    if mode == "down":
        assert waited < 5  # refused at once
    elif backend == "sqlite":
        assert waited >= 4  # each read waited its busy timeout: a tenth of the 50 ms budget
    else:
        assert waited >= 30  # each read waited for the deadline (0.8 of the budget left)
    if mode == "slow" and backend == "redis":
        assert {a["reason"] for a in answers} == {"online store timed out"}
    else:
        assert {a["reason"] for a in answers} == {"online store failed: FeatureError"}


# ------------------------------------------------------------------ a lock held for real


def test_a_store_another_process_holds_locked_cannot_hold_a_request_past_the_budget(
    shop: Path, tmp_path: Path
) -> None:
    path = tmp_path / "online.sqlite"
    with (
        sqlite3.connect(Path(_state(shop)) / "online.sqlite") as source,
        sqlite3.connect(path) as copy,
    ):
        source.backup(copy)
    spec = variant(
        shop,
        tmp_path,
        shop.read_text() + f"\nonline_store: {{kind: sqlite, path: {path}}}\n",
        serving=NO_BREAKER,
    )
    with sqlite_locked(path) as release, serving(spec, "--state-dir", _state(shop)) as server:
        results = _predict_concurrently(server, requests=10, clients=4)
        release()  # the lock is released: the store answers again
        with server.client() as client:
            body = {"entities": {"customer": "100017"}}
            after = client.post("/v1/predict", json=body).json()

    answers = [answer for answer, _ in results]
    assert all(a["degraded"] and a["path"] == "fallback:baseline" for a in answers)
    assert {a["reason"] for a in answers} == {"online store failed: FeatureError"}
    assert_within_budget(answers, results)  # never SQLite's default 5 s wait
    assert after["path"] == "model"


def test_the_store_the_service_opens_reads_with_a_tenth_of_the_budget(
    shop: Path, tmp_path: Path
) -> None:
    spec = _spec(shop, tmp_path, "sqlite", None)
    service = Service(Project.load(spec, Path(_state(shop))), reload_interval_s=0)
    try:
        assert isinstance(service.store, SqliteStore)
        assert service.store.read_timeout_ms == BUDGET_MS / 10
    finally:
        asyncio.run(service.stop())


def test_the_prediction_service_refuses_a_recommenders_fault(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill of a dependency the service does not have would pass without testing anything."""
    spec = _spec(shop, tmp_path, "sqlite", None)
    monkeypatch.setenv(FAULTS_ENV, "recommend_model=down")
    with pytest.raises(ServingError) as raised:
        Service(Project.load(spec, Path(_state(shop))), reload_interval_s=0)
    assert "has no recommender" in raised.value.message
    assert "online_store=down" in (raised.value.fix or "")


def test_recommend_model_faults_parse_and_unknown_ones_name_every_known_one() -> None:
    from taxiway.serving.faults import model_fault, parse_faults

    assert parse_faults("recommend_model=slow, online_store=down") == {
        "recommend_model": "slow",
        "online_store": "down",
    }
    with pytest.raises(ServingError) as raised:
        parse_faults("recommend_model=hung")
    assert "recommend_model=down, recommend_model=slow" in (raised.value.fix or "")
    slow = model_fault({"recommend_model": "slow"}, 0.02)
    assert slow is not None
    began = time.perf_counter()
    with pytest.raises(ServingError, match="hung for 20 ms"):
        slow()
    assert time.perf_counter() - began >= 0.02  # the whole budget: past the model's share
    down = model_fault({"recommend_model": "down"}, 0.02)
    assert down is not None
    with pytest.raises(ServingError, match="model is down"):
        down()
