"""The dashboard's routes, the in-service monitor task, and the monitor's gauges."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from taxiway.errors import MonitoringError
from taxiway.models.registry import ModelVersion
from taxiway.serving.dashboard import CSP, page, standalone_app
from taxiway.serving.metrics import Metrics
from taxiway.serving.monitor_task import (
    ENV_INTERVAL,
    MonitorProcess,
    MonitorTask,
    RunResult,
    child_command,
    interval_from_env,
    monitor_folder,
    run_for_version,
)
from taxiway.spec.project import Project

from .conftest import Server, serving, variant
from .dashboard_fixture import RETAIL_SPEC, monitored_state, report, write_report

# ------------------------------------------------------------------ the routes (standalone app)


class Client:
    """A synchronous client of an ASGI app whose lifespan runs around it (starlette's
    TestClient warns without httpx2)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient) -> None:
        self.loop, self.client = loop, client

    def get(self, path: str) -> httpx.Response:
        return self.loop.run_until_complete(self.client.get(path))

    def post(self, path: str) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(path))


@contextlib.contextmanager
def running(app: Starlette) -> Iterator[Client]:
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    try:
        loop.run_until_complete(lifespan.__aenter__())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        try:
            yield Client(loop, client)
        finally:
            loop.run_until_complete(client.aclose())
            loop.run_until_complete(lifespan.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    project = Project.load(RETAIL_SPEC, tmp_path / "state")
    app = standalone_app(project, report=write_report(tmp_path))
    with running(app) as started:
        yield started


def test_the_page_is_served_with_its_data_inlined_and_a_self_only_policy(client: Client) -> None:
    answer = client.get("/dashboard")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CSP
    assert "default-src 'none'" in CSP
    assert "connect-src 'self'" in CSP
    html = answer.text
    assert '<script src="/dashboard/dashboard.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/dashboard/dashboard.css">' in html
    assert "http://" not in html
    assert "https://" not in html
    block = html.split('<script type="application/json" id="dashboard-data">')[1]
    inlined = orjson.loads(block.split("</script>")[0])
    assert inlined["monitor"]["report"]["features"][0]["name"] == "spend_30d"
    # the alert's <script> stays text: every "<" of the data is escaped in the page
    assert "<script>document.body" not in html
    assert client.get("/dashboard/").text == html


def test_data_json_is_the_monitor_state_and_the_live_facts(client: Client) -> None:
    answer = client.get("/dashboard/data.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    data = answer.json()
    assert data["live"] == {
        "version": 1,
        "arm": None,
        "model": "retail_churn",
        "answers": None,
        "source": "saved report monitor.json",
    }
    monitor = data["monitor"]
    assert monitor["status"] == "ok"
    assert monitor["report"] == report()
    assert monitor["interval_s"] == 0.0


@pytest.mark.parametrize(
    ("name", "media_type", "snippet"),
    [
        ("dashboard.js", "text/javascript; charset=utf-8", "const DATA_URL"),
        ("dashboard.css", "text/css; charset=utf-8", "tr.status-drift"),
    ],
)
def test_the_assets_are_served_locally(
    client: Client, name: str, media_type: str, snippet: str
) -> None:
    answer = client.get(f"/dashboard/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == media_type
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert snippet in answer.text


def test_nothing_else_is_served(client: Client) -> None:
    assert client.get("/dashboard/index.html").status_code == 404
    assert client.get("/dashboard/../pyproject.toml").status_code == 404
    assert client.post("/dashboard/data.json").status_code == 405


def test_the_page_escapes_anything_that_could_close_its_data_block() -> None:
    html = page(orjson.dumps({"live": {"model": "</script><script>alert(1)</script>"}}))
    assert b"alert(1)</script>" not in html
    assert html.count(b"</script>") == 2  # dashboard.js's tag and the data block's own


def test_a_saved_report_must_be_a_report(tmp_path: Path) -> None:
    project = Project.load(RETAIL_SPEC, tmp_path / "state")
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a report"}')
    with pytest.raises(MonitoringError, match="is not a monitor report"):
        standalone_app(project, report=bad)
    bad.write_text("{")
    with pytest.raises(MonitoringError, match="cannot read the report"):
        standalone_app(project, report=bad)


def test_the_standalone_dashboard_needs_a_version(tmp_path: Path) -> None:
    project = Project.load(RETAIL_SPEC, tmp_path / "state")
    with pytest.raises(MonitoringError, match="no version of retail_churn is in production"):
        standalone_app(project)


def test_one_standalone_dashboard_per_state_folder(tmp_path: Path) -> None:
    project = Project.load(RETAIL_SPEC, tmp_path / "state")
    saved = write_report(tmp_path)
    first = standalone_app(project, report=saved)
    with (
        running(first),
        pytest.raises(MonitoringError, match="another `taxiway dashboard` runs"),
    ):
        standalone_app(project, report=saved)


def test_the_standalone_dashboard_runs_the_monitor_over_the_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    monitored_state(state)  # spend arrives tripled from the second of three windows
    app = standalone_app(Project.load(RETAIL_SPEC, state), interval_s=0)
    with running(app) as client:
        data = client.get("/dashboard/data.json").json()
        html = client.get("/dashboard").text
    assert data["live"]["version"] == 1
    assert data["live"]["arm"] == "production"
    monitor = data["monitor"]
    assert monitor["status"] == "ok", monitor["message"]
    report = monitor["report"]
    assert {f["name"]: f["status"] for f in report["features"]} == {
        "age": "ok",
        "spend": "drift",
        "plan": "ok",
    }
    assert report["period"]["requests"] == 1800
    assert report["versions"] == {"1": 1800}
    assert "drift:retail_churn:spend" in {a["key"] for a in report["alerts"]}
    assert '"name":"spend"' in html  # the same data, inlined in the page
    assert (state / "monitor" / "dashboard" / "retail_churn-v1").is_dir()


def test_a_version_without_a_reference_is_named_on_the_page(tmp_path: Path) -> None:
    state = tmp_path / "state"
    monitored_state(state, reference=False)
    app = standalone_app(Project.load(RETAIL_SPEC, state), interval_s=0)
    with running(app) as client:
        monitor = client.get("/dashboard/data.json").json()["monitor"]
    assert monitor["status"] == "no_reference"
    assert monitor["report"] is None
    assert "version 1 of retail_churn has no monitor reference" in monitor["message"]


# ------------------------------------------------------------------ the monitor task


def _result(value: float = 0.3) -> RunResult:
    return RunResult("ok", 4, {"features": [{"name": "x", "value": value}], "healthy": True})


def test_a_run_is_kept_in_latest_json_for_every_reader(tmp_path: Path) -> None:
    task = MonitorTask(_result, tmp_path, interval_s=60)
    pending = orjson.loads(task.snapshot())
    assert pending["status"] == "pending"
    assert pending["report"] is None
    assert "first run" in pending["message"]
    state = task.run_once()
    assert state["status"] == "ok"
    assert state["version"] == 4
    assert state["last_ok_at"] == state["ran_at"]
    other = MonitorTask(_result, tmp_path, interval_s=60)  # another worker, same folder
    assert orjson.loads(other.snapshot()) == state
    task.stop()
    other.stop()


def test_a_failed_run_keeps_the_last_report_and_says_why(tmp_path: Path) -> None:
    outcomes: list[RunResult | Exception] = [
        _result(0.3),
        MonitoringError("the log folder vanished", fix="x"),
        RuntimeError("a bug"),
    ]

    def runner() -> RunResult:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    task = MonitorTask(runner, tmp_path)
    good = task.run_once()
    failed = task.run_once()
    assert failed["status"] == "error"
    assert failed["message"] == "the log folder vanished"
    assert failed["report"] == good["report"]
    assert failed["last_ok_at"] == good["ran_at"]
    crashed = task.run_once()  # never raised into the caller
    assert crashed["status"] == "error"
    assert "a bug" in crashed["message"]
    assert orjson.loads(task.snapshot())["report"] == good["report"]
    task.stop()


def test_gauges_are_set_after_each_good_run_only(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    task = MonitorTask(_result, tmp_path, on_report=seen.append)
    task.run_once()
    assert seen == [_result().report]
    task.stop()
    failing = MonitorTask(lambda: RunResult("no_reference", 2, message="none"), tmp_path)
    assert failing.run_once()["status"] == "no_reference"
    assert seen == [_result().report]


def test_one_process_leads_and_another_takes_over_when_it_stops(tmp_path: Path) -> None:
    first = MonitorTask(_result, tmp_path)
    second = MonitorTask(_result, tmp_path)
    assert first.lead()
    assert first.lead()  # still
    assert not second.lead()
    first.stop()
    assert second.lead()
    second.stop()


def test_the_thread_runs_every_interval_in_the_leader_only(tmp_path: Path) -> None:
    runs = {"leader": 0, "follower": 0}
    ran = threading.Event()

    def runner(who: str) -> Any:
        def run() -> RunResult:
            runs[who] += 1
            if runs[who] >= 3:
                ran.set()
            return _result(runs[who])

        return run

    leader = MonitorTask(runner("leader"), tmp_path, interval_s=0.05)
    assert leader.lead()
    follower = MonitorTask(runner("follower"), tmp_path, interval_s=0.05)
    leader.start()
    follower.start()
    try:
        assert ran.wait(10)
    finally:
        leader.stop()
        follower.stop()
    assert runs["follower"] == 0
    assert orjson.loads(follower.snapshot())["report"]["features"][0]["value"] >= 3


def test_an_interval_of_zero_never_runs_and_says_so(tmp_path: Path) -> None:
    calls: list[int] = []

    def runner() -> RunResult:
        calls.append(1)
        return _result()

    task = MonitorTask(runner, tmp_path, interval_s=0)
    task.start()
    time.sleep(0.1)
    task.stop()
    assert calls == []
    state = orjson.loads(task.snapshot())
    assert state["status"] == "off"
    assert ENV_INTERVAL in state["message"]


def test_the_interval_comes_from_the_environment() -> None:
    assert interval_from_env({ENV_INTERVAL: "0"}) == 0.0
    assert interval_from_env({ENV_INTERVAL: " "}) == 60.0
    for bad in ("-1", "inf", "nan", "1m"):
        with pytest.raises(MonitoringError, match="must be a number of seconds"):
            interval_from_env({ENV_INTERVAL: bad})


def _wait_for(check: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_service_runs_the_monitor_in_a_child_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    monitored_state(state)
    project = Project.load(RETAIL_SPEC, state)
    seen: list[dict[str, Any]] = []
    task = MonitorProcess(
        child_command(project, 1.0), monitor_folder(project), interval_s=1.0, on_report=seen.append
    )
    task.start()
    try:
        _wait_for(lambda: seen)
        child = task.child
        assert child is not None
        assert child.pid != os.getpid()
        state_now = orjson.loads(task.snapshot())
    finally:
        task.stop()
    assert child.returncode == 0  # its standard input closed: it finished and exited
    assert state_now["status"] == "ok"
    assert {f["name"]: f["status"] for f in seen[0]["features"]}["spend"] == "drift"
    # its alerts went through the state `taxiway monitor` shares (deduplicated across both)
    assert "drift:retail_churn:spend" in (state / "monitor" / "alerts.json").read_text()
    assert task.lead()  # the lock was handed on: anyone may take it now
    task.stop()


def test_the_monitor_process_exits_when_the_service_is_gone(tmp_path: Path) -> None:
    project = Project.load(RETAIL_SPEC, tmp_path / "state")
    child = subprocess.Popen(child_command(project, 3600.0), stdin=subprocess.PIPE)
    assert child.stdin is not None
    child.stdin.close()  # what the kernel does when the worker holding the pipe dies
    assert child.wait(timeout=60) == 0


def test_a_monitor_process_that_dies_is_restarted(tmp_path: Path) -> None:
    project = Project.load(RETAIL_SPEC, tmp_path / "state")
    task = MonitorProcess(
        child_command(project, 3600.0), monitor_folder(project), interval_s=3600.0, poll_s=0.05
    )
    task.start()
    try:
        _wait_for(lambda: task.child is not None)
        first = task.child
        assert first is not None
        first.kill()
        _wait_for(lambda: task.child is not None and task.child is not first, 30)
    finally:
        task.stop()
    assert first.wait() != 0


def _version(profile: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        name="retail_churn",
        version=7,
        stage="production",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        created_by="tests",
        algorithm="lightgbm",
        task="classification",
        metrics={},
        features=[],
        definitions_hash="",
        spec_hash="",
        git_commit=None,
        training={},
        lineage={},
        profile=profile,
        serving={},
        artifact_dir="/nowhere",
    )


def test_a_version_trained_before_monitoring_has_no_reference(tmp_path: Path) -> None:
    project = Project.load(RETAIL_SPEC, tmp_path / "state")
    result = run_for_version(
        project,
        _version({"columns": {}}),
        log_folder=tmp_path / "log",
        outcomes_folder=None,
        state_folder=tmp_path / "monitor",
    )
    assert result.status == "no_reference"
    assert result.version == 7
    assert result.report is None
    assert result.message is not None
    assert "version 7 of retail_churn has no monitor reference" in result.message
    assert "Retrain" in result.message


# ------------------------------------------------------------------ the gauges


def test_the_report_becomes_gauges_with_the_contract_names() -> None:
    metrics = Metrics()
    metrics.set_monitor("churn", report())
    text = metrics.render().decode()
    lines = set(text.splitlines())
    assert 'taxiway_drift_statistic{feature="spend_30d",model="churn"} 0.41' in lines
    assert 'taxiway_drift_threshold{feature="spend_30d",model="churn"} 0.05' in lines
    assert 'taxiway_drift_status{feature="spend_30d",model="churn"} 2.0' in lines
    assert 'taxiway_drift_status{feature="orders_7d",model="churn"} 1.0' in lines
    assert 'taxiway_drift_status{feature="tenure_days",model="churn"} 0.0' in lines
    assert 'taxiway_drift_status{feature="__output__",model="churn"} 0.0' in lines
    assert 'taxiway_slo_burn_rate{model="churn",slo="latency",window="1h"} 15.0' in lines
    assert 'taxiway_quality{kind="estimated",metric="roc_auc",model="churn"} 0.78' in lines
    assert 'taxiway_quality{kind="realised",metric="log_loss",model="churn"} 0.52' in lines
    assert 'metric="n"' not in text  # a count is not a quality metric
    stamp = metrics.registry.get_sample_value(
        "taxiway_monitor_last_run_timestamp_seconds", {"model": "churn"}
    )
    assert stamp is not None
    assert abs(stamp - time.time()) < 60


def test_a_report_with_gaps_sets_what_it_has() -> None:
    metrics = Metrics()
    metrics.set_monitor(
        "m",
        {
            "features": [{"name": "a", "value": None, "threshold": 0.1, "status": "ok"}, "junk"],
            "output": None,
            "slo": [],
            "quality": {"estimated": None, "realised": {"mae": float("nan")}},
        },
    )
    value = metrics.registry.get_sample_value
    assert value("taxiway_drift_statistic", {"model": "m", "feature": "a"}) is None
    assert value("taxiway_drift_threshold", {"model": "m", "feature": "a"}) == 0.1
    assert value("taxiway_quality", {"model": "m", "metric": "mae", "kind": "realised"}) is None


# ------------------------------------------------------------------ in the real service


@pytest.fixture(scope="module")
def served(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("dashboard-served")
    spec = variant(shop, folder, serving=f"  log: {{path: {folder / 'log'}}}\n")
    state = str(shop.parent / ".taxiway")
    with serving(spec, "--state-dir", state, "--workers", "2", env={ENV_INTERVAL: "1"}) as server:
        yield server


def _monitor_processes(spec: Path) -> list[int]:
    """The pids of the monitor processes running for ``spec`` (Linux: from /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            words = cmdline.read_bytes().split(b"\0")
            if b"taxiway.serving.monitor_task" in words and str(spec).encode() in words:
                found.append(int(cmdline.parent.name))
    return found


def _monitor_ran(server: Server) -> dict[str, Any]:
    """data.json once the monitor ran after some answers were logged."""
    with server.client() as client:
        for customer in ("100031", "100032", "100033"):
            assert client.post("/v1/predict", json={"entities": {"customer": customer}}).is_success
        asked = time.time()
        deadline = time.monotonic() + 30
        while True:
            data: dict[str, Any] = client.get("/dashboard/data.json").json()
            ran_at = data["monitor"]["ran_at"]
            if ran_at and datetime.fromisoformat(ran_at).timestamp() > asked + 1:
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"the monitor did not run in 30 s: {data['monitor']}")
            time.sleep(0.2)


def test_the_service_serves_the_dashboard(served: Server) -> None:
    with served.client() as client:
        answer = client.get("/dashboard")
        js = client.get("/dashboard/dashboard.js")
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == CSP
    assert 'id="features-table"' in answer.text
    assert js.status_code == 200


def test_the_service_counts_answers_by_arm_over_every_worker(served: Server) -> None:
    with served.client() as client:
        before = client.get("/dashboard/data.json").json()["live"]
        for customer in ("100017", "100018", "100019", "100020", "100021", "100022"):
            assert client.post("/v1/predict", json={"entities": {"customer": customer}}).is_success
        counted = (before["answers"] or {}).get("production", {}).get("model", 0)
        deadline = time.monotonic() + 15
        while True:  # the other worker hands its tallies over every second
            time.sleep(0.5)
            after = client.get("/dashboard/data.json").json()["live"]
            done = after["answers"]["production"]["model"] - counted
            if done >= 6 or time.monotonic() > deadline:
                break
    assert after["model"] == "retail_churn"
    assert after["version"] == 1
    assert after["arm"] == "production"
    assert done == 6


def test_the_in_service_monitor_runs_once_for_all_workers(served: Server, shop: Path) -> None:
    from taxiway.models.registry import open_registry

    data = _monitor_ran(served)
    monitor = data["monitor"]
    project = Project.load(shop)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.get("retail_churn", 1)
    finally:
        registry.close()
    assert version is not None
    if "monitor" not in version.profile:  # a version trained before monitoring
        assert monitor["status"] == "no_reference", monitor
        assert "version 1 of retail_churn has no monitor reference" in monitor["message"]
    else:
        assert monitor["status"] == "ok", monitor
        assert {f["name"] for f in monitor["report"]["features"]} == set(
            version.profile["monitor"]["features"]
        )
        assert monitor["report"]["version"] == 1
        # the leader sets the gauges when it next reads latest.json: poll, a loaded machine
        # may take a few seconds
        wanted = 'taxiway_drift_status{feature="__output__",model="retail_churn"}'
        deadline = time.monotonic() + 30
        with served.client() as client:
            metrics = client.get("/metrics").text
            while wanted not in metrics and time.monotonic() < deadline:
                time.sleep(0.5)
                metrics = client.get("/metrics").text
        assert wanted in metrics
        assert 'taxiway_monitor_last_run_timestamp_seconds{model="retail_churn"}' in metrics
    folder = served.log.parent / "monitor" / "service"  # beside the log (folder/log)
    assert orjson.loads((folder / "latest.json").read_bytes())["status"] == monitor["status"]
    with served.client() as client:  # both workers read the leader's file
        statuses = {client.get("/dashboard/data.json").json()["monitor"]["status"] for _ in "ab"}
    assert statuses == {monitor["status"]}
    spec = (served.log.parent / "taxiway.yaml").resolve()
    assert len(_monitor_processes(spec)) == 1  # one for the service, not one per worker
