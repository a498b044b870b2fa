"""`taxiway run` as a user runs it: real processes on the retail example, the retrain lock on
a SQLite registry (a flock) and a PostgreSQL one (an advisory lock), SIGTERM, ``--once``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.conftest import retail_shop

from taxiway.models.registry import open_registry
from taxiway.spec.project import Project

AS_OF = "2025-12-31"
POLICY = "{every: 7d, on: [drift], window: 365d, min_new_rows: 1}"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retail_shop(tmp_path_factory.mktemp("shop"), customers=400)


def _spec(shop: Path, folder: Path, registry: str = "") -> Path:
    text = shop.read_text().replace("approvals: [security, privacy, business]", "approvals: []")
    for item in ("data", "contracts"):
        (folder / item).symlink_to(shop.parent / item)
    spec = folder / "taxiway.yaml"
    spec.write_text(f"{text}\nretrain: {POLICY}\n{registry}")
    return spec


def _start(spec: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "taxiway", "run", "-f", str(spec), "--as-of", AS_OF, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(logs: list[Path], text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(text in log.read_text() for log in logs if log.exists()):
            return
        time.sleep(0.2)
    shown = "\n".join(f"--- {log}\n{log.read_text()}" for log in logs if log.exists())
    pytest.fail(f"no {text!r} within {timeout_s} s:\n{shown}")


def _count(logs: list[Path], text: str) -> int:
    return sum(log.read_text().count(text) for log in logs)


def _versions(spec: Path) -> list[int]:
    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        return [v.version for v in registry.list(project.spec.name)]
    finally:
        registry.close()


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("taxiway run did not exit within 120 s of SIGTERM")


def _two_schedulers_retrain_once(spec: Path, folder: Path) -> None:
    logs = [folder / "a.log", folder / "b.log"]
    processes = [_start(spec, log, "--tick", "1s") for log in logs]
    try:
        _wait_for(logs, "retrain: stopped at", 600)
        time.sleep(3)  # several ticks of the other process
        assert _count(logs, "retrain: trigger") == 1
        leader = next(
            i for i, log in enumerate(logs) if "holding the retrain lock" in log.read_text()
        )
        follower = 1 - leader
        assert "holds the retrain lock: waiting" in logs[follower].read_text()
        assert "holding the retrain lock" not in logs[follower].read_text()

        assert _stop(processes[leader]) == 0
        text = logs[leader].read_text()
        assert "SIGTERM: finishing the step under way" in text
        assert text.rstrip().endswith("stopped")
        _wait_for([logs[follower]], "holding the retrain lock", 60)  # it takes over
        time.sleep(2)
        assert _count(logs, "retrain: trigger") == 1  # the cadence's state is shared
        assert _stop(processes[follower]) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert _versions(spec) == [1]


def test_two_schedulers_on_sqlite_never_retrain_at_once(shop: Path, tmp_path: Path) -> None:
    _two_schedulers_retrain_once(_spec(shop, tmp_path), tmp_path)


@pytest.mark.postgres
def test_two_schedulers_on_postgres_never_retrain_at_once(
    shop: Path, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_RUN_REGISTRY_URL", postgres_url)
    schema = f"run_{uuid.uuid4().hex[:8]}"
    registry = f"registry:\n  kind: postgres\n  url: ${{TW_RUN_REGISTRY_URL}}\n  schema: {schema}\n"
    _two_schedulers_retrain_once(_spec(shop, tmp_path, registry), tmp_path)


def test_once_runs_one_tick_and_exits(shop: Path, tmp_path: Path) -> None:
    spec = _spec(shop, tmp_path)
    log = tmp_path / "once.log"
    first = _start(spec, log, "--once")
    assert first.wait(600) == 0, log.read_text()
    assert _count([log], "retrain: trigger cadence") == 1
    assert _versions(spec) == [1]
    again = _start(spec, log, "--once")
    assert again.wait(600) == 0, log.read_text()
    assert _count([log], "retrain: trigger") == 1  # a week has not passed
    assert _count([log], "taxiway run: stopped\n") == 2


def test_a_tick_that_is_not_a_duration_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(
        (Path(__file__).resolve().parents[2] / "examples/retail/taxiway.yaml").read_text()
    )
    done = subprocess.run(
        [sys.executable, "-m", "taxiway", "run", "-f", str(spec), "--tick", "soon", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert done.returncode == 2
    assert "--tick" in done.stderr
