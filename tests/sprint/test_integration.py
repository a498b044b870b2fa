"""The load test's figures, through the sprint's own load client: what its clients wait for
is the latency gate, whatever the service says of itself; and a 503 for an unwritable log is
counted as such."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from taxiway.spec.loader import load_spec_text
from taxiway.spec.project import Project
from taxiway.sprint.integration import (
    LoadResult,
    RunningService,
    load_test,
    smoke_test,
    stop_service,
)
from taxiway.sprint.phases import latency_check, prediction_log_check

FAKE = Path(__file__).with_name("fake_service.py")


@contextmanager
def fake_service(tmp_path: Path, delay_ms: float, mode: str = "answer") -> Iterator[RunningService]:
    """``fake_service.py`` in a subprocess, ready, as the sprint holds a running service."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    log = tmp_path / f"fake-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(FAKE), str(port), str(delay_ms), mode],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = RunningService(process, f"http://127.0.0.1:{port}", log, {})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{service.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(service.output()) from None
                time.sleep(0.05)
        yield service
    finally:
        stop_service(service)


def test_the_gate_fails_on_the_clients_p99_though_the_service_says_it_was_fast(
    tmp_path: Path,
) -> None:
    with fake_service(tmp_path, delay_ms=80) as service:
        load = load_test(service, [{"entities": {}}], concurrency=2, duration_s=1.0)
    summary = load.summary(50.0)
    # the service reports 1 ms for itself; its clients waited at least the 80 ms it slept
    assert summary["p99_ms"] == 1.0
    assert summary["client_p99_ms"] >= 80.0
    assert summary["answered"] == load.requests > 0
    assert summary["latency_gate"] == "client_p99_ms"
    assert summary["within_budget"] is False
    check = latency_check(summary, 1)
    assert check.status == "fail"
    assert check.blocker is not None
    assert check.blocker.title == "clients waited past the latency budget under load"
    assert "the service's own latency_ms p99 1.0 ms" in check.detail
    # within a budget the clients' waits fit in, it passes
    assert latency_check(load.summary(10_000.0), 1).status == "pass"


def test_answers_refused_because_the_log_cannot_be_written_are_counted(tmp_path: Path) -> None:
    with fake_service(tmp_path, delay_ms=0, mode="refuse") as service:
        load = load_test(service, [{"entities": {}}], concurrency=2, duration_s=0.5)
    assert load.requests > 0
    assert load.refused_unlogged == load.errors == load.requests
    assert load.answered == 0
    summary = load.summary(50.0)
    assert summary["within_budget"] is False
    assert latency_check(summary, 1).blocker is not None
    found = {
        "folder": "state/predictions",
        "answered": load.answered,
        "records_written": 0,
        "refused_unlogged": load.refused_unlogged,
    }
    check = prediction_log_check(found, "serve.log")
    assert check.status == "fail"
    assert check.detail.startswith(f"{load.refused_unlogged:,} requests refused (503)")
    assert check.blocker is not None
    assert check.blocker.title == "the service cannot write its prediction log"


def test_a_summary_without_requests_is_never_within_budget() -> None:
    empty = LoadResult(0, 0, 0, 1.0, [], [], {})
    assert empty.summary(50.0)["within_budget"] is False
    assert latency_check(empty.summary(50.0), 1).status == "fail"


def test_the_load_test_runs_for_the_seconds_it_is_given(tmp_path: Path) -> None:
    with fake_service(tmp_path, delay_ms=0) as service:
        load = load_test(service, [{"entities": {}}], concurrency=2, duration_s=1.5)
    summary = load.summary(50.0)
    # no request cap: it stops when the time is up, and says how long it ran
    assert summary["seconds_asked"] == 1.5
    assert summary["max_requests"] is None
    assert summary["stopped_by"] == "time"
    assert 1.5 <= summary["duration_s"] == round(load.duration_s, 3)
    assert summary["rps"] == round(load.requests / load.duration_s, 1)
    assert summary["answered"] == load.requests > 0


def test_a_capped_load_test_says_it_stopped_at_its_cap(tmp_path: Path) -> None:
    with fake_service(tmp_path, delay_ms=0) as service:
        load = load_test(
            service, [{"entities": {}}], concurrency=2, duration_s=60.0, max_requests=50
        )
    summary = load.summary(50.0)
    # each client finishes the request it has in flight when the cap is reached
    assert 50 <= load.requests < 52
    assert summary["stopped_by"] == "request cap"
    assert summary["max_requests"] == 50
    assert 0 < summary["duration_s"] < 60.0


def test_a_smoke_check_that_fails_shows_what_the_service_answered(tmp_path: Path) -> None:
    project = Project(load_spec_text("name: demo"), tmp_path / "taxiway.yaml")
    body: dict[str, Any] = {"entities": {}, "features": {}}
    with fake_service(tmp_path, delay_ms=0) as service:
        checks = {c.name: c for c in smoke_test(service, project, [body])}
    # the stand-in answers 200 without the fields taxiway's answer has
    predict = checks["smoke POST /v1/predict"]
    assert predict.status == "fail"
    assert predict.detail == "HTTP 200 without arm, model_version, path, prediction, request_id"
    assert predict.blocker is not None
    assert predict.blocker.evidence == (
        f"{predict.detail}; the service answered: " + '{"latency_ms": 1.0, "degraded": false}'
    )
    # its fix replays the request it saved, and names what to compare the answer with
    saved = tmp_path / ".taxiway" / "sprint" / "smoke" / "post-v1-predict.json"
    assert json.loads(saved.read_text()) == body
    assert f"-d @{saved} http://127.0.0.1:8080/v1/predict`" in predict.blocker.fix
    assert predict.blocker.fix.endswith("compare its answer (in the evidence) with docs/serving.md")
    # a GET is replayed as one; its metadata names no input, so no inference request is sent
    metrics = checks["smoke GET /metrics"]
    assert metrics.blocker is not None
    assert "`curl -sS http://127.0.0.1:8080/metrics`" in metrics.blocker.fix
    assert checks["smoke POST /v2/models/demo/infer"].status == "skip"


def test_a_smoke_check_refused_with_a_5xx_points_at_the_services_output(tmp_path: Path) -> None:
    project = Project(load_spec_text("name: demo"), tmp_path / "taxiway.yaml")
    with fake_service(tmp_path, delay_ms=0, mode="refuse") as service:
        checks = {c.name: c for c in smoke_test(service, project, [])}
    outcome = checks["smoke POST /v1/outcomes"]
    assert outcome.status == "fail"
    assert outcome.blocker is not None
    assert outcome.blocker.evidence.startswith("HTTP 503; the service answered: {")
    assert "prediction log cannot be written" in outcome.blocker.evidence
    assert outcome.blocker.fix.endswith(f"the service's output is in {service.log}")
