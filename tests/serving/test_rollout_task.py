"""`rollout.auto: true` in the service: one process across the workers checks the active
rollout every `check_every` with the real controller, acts on the verdict, survives a failing
check, and hands over when its leader dies."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests.rollout.traffic import Traffic
from tests.rollout.world import make_project
from tests.serving.rollout_world import two_versions

from taxiway.rollout.controller import Controller
from taxiway.rollout.state import open_rollout_store
from taxiway.serving.app import build_app
from taxiway.serving.rollout_task import (
    AUTO_BY,
    AutoCheck,
    FileLeader,
    PostgresLeader,
    RolloutLoop,
    child_command,
    leader_lock,
)
from taxiway.serving.service import Service
from taxiway.spec.project import Project

AUTO = """\
  steps: [20, 50, 100]
  min_duration: 1s
  min_units: 50
  metric: {name: converted, min_effect: 0.05}
  auto: true
  check_every: 1s
"""


def _wait(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_service_promotes_a_rollout_by_itself(shop: Path, tmp_path: Path) -> None:
    spec = two_versions(shop, tmp_path)
    text = re.sub(
        r"\nrollout:\n(  .*\n)+", "\nrollout:\n  control: production\n" + AUTO, spec.read_text()
    )
    spec.write_text(text)
    project = Project.load(spec)
    with Controller(project, by="test") as controller:
        state = controller.start(candidate=2)
    # evidence that clears the first step: 1,000 customers, no difference between the arms
    traffic = Traffic(project.state_dir, state.salt, {"control": 0.2, "candidate": 0.2})
    traffic.visit(state.share, datetime.now(UTC), new=1000, span_s=0.5)

    store = open_rollout_store(project.spec.registry, project.state_dir)

    async def serve() -> None:
        service = Service(Project.load(spec), reload_interval_s=0, warm_up=False)
        app = build_app(service)
        inner = app.app  # type: ignore[attr-defined]  # the Starlette app inside the limits
        async with inner.router.lifespan_context(inner):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                deadline = time.monotonic() + 30.0
                while store.get(state.id).step_index < 1:
                    assert time.monotonic() < deadline, "the service did not promote"
                    await asyncio.sleep(0.2)
                assert (await client.get("/v2/health/ready")).status_code == 200

    try:
        asyncio.run(serve())
        promoted = [e for e in store.events(state.id) if e.kind == "promote"]
        assert promoted
        assert promoted[0].by.startswith(AUTO_BY)
        assert promoted[0].evidence["verdict"] == "promote"
        assert store.get(state.id).share == 50.0
        assert store.verify() == len(store.events(state.id))
    finally:
        store.close()


def _checked_project(folder: Path) -> tuple[Project, int]:
    """A rollout with a little traffic (every check holds and counts one revision)."""
    project = make_project(folder, AUTO)
    with Controller(project, by="test") as controller:
        state = controller.start(candidate=2)
    Traffic(project.state_dir, state.salt, {"control": 0.1, "candidate": 0.1}).visit(
        state.share, datetime.now(UTC), new=20, span_s=0.1
    )
    return project, state.id


_WORKER = """
import sys, time
from taxiway.serving.rollout_task import RolloutLoop, child_command, leader_lock
from taxiway.spec.project import Project
project = Project.load(sys.argv[1], sys.argv[2])
RolloutLoop(child_command(project), leader_lock(project), poll_s=0.2).start()
time.sleep(600)
"""


def _worker(project: Project) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(project.spec_path), str(project.state_dir)],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_two_workers_never_both_check_a_period_and_a_killed_leader_is_replaced(
    tmp_path: Path,
) -> None:
    project, rollout_id = _checked_project(tmp_path)
    store = open_rollout_store(project.spec.registry, project.state_dir)
    first = _worker(project)
    second: subprocess.Popen[bytes] | None = None
    try:
        began = time.monotonic()
        _wait(lambda: store.get(rollout_id).revision >= 2, 20.0, "the first checks")
        second = _worker(project)
        time.sleep(3.0)
        # every check of one period changes the row once: with two workers polling the lock
        # every 0.2 s and checks due every second, the checks stay at most one per second
        elapsed = time.monotonic() - began
        checks = store.get(rollout_id).revision
        assert 2 <= checks <= elapsed / 1.0 + 1
        os.killpg(first.pid, signal.SIGKILL)  # the leader (it held the lock first) dies
        first.wait()
        before = store.get(rollout_id).revision
        _wait(lambda: store.get(rollout_id).revision >= before + 2, 15.0, "a new leader")
        assert store.verify() == 1  # held checks write no event; the chain is intact
        assert store.get(rollout_id).state == "running"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        store.close()


def test_a_check_is_due_once_a_period_whoever_asks(tmp_path: Path) -> None:
    project, rollout_id = _checked_project(tmp_path)
    with Controller(project, by="a") as a, Controller(project, by="b") as b:
        started = a.store.get(rollout_id).updated_at
        one, two = AutoCheck(a), AutoCheck(b)
        assert one.run_due(started + timedelta(seconds=0.5)) == pytest.approx(0.5)
        assert one.checks == 0
        one.run_due(started + timedelta(seconds=1))
        assert one.checks == 1
        two.run_due(started + timedelta(seconds=1.5))  # checked 0.5 s ago by the other
        assert two.checks == 0
        two.run_due(started + timedelta(seconds=2))
        assert (one.checks, two.checks) == (1, 1)
        assert a.store.get(rollout_id).revision == 2


def test_a_failing_check_is_logged_with_its_fix_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project, rollout_id = _checked_project(tmp_path)
    blocked = project.state_dir / "rollout" / str(rollout_id)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a folder")  # the rollout's unit state cannot be written
    with Controller(project, by="a") as controller:
        started = controller.store.get(rollout_id).updated_at
        auto = AutoCheck(controller)
        with caplog.at_level(logging.WARNING, logger="taxiway.serving.rollout"):
            wait = auto.run_due(started + timedelta(seconds=1))
        assert (auto.checks, auto.failures, wait) == (0, 1, 1.0)
        assert "could not check the rollout" in caplog.text
        assert "fix:" in caplog.text
        # retried a period later, not in a tight loop; it works once the folder is back
        assert auto.run_due(started + timedelta(seconds=1.5)) == pytest.approx(0.5)
        blocked.unlink()
        auto.run_due(started + timedelta(seconds=2))
        assert (auto.checks, auto.failures) == (1, 1)


def test_no_active_rollout_means_no_check(tmp_path: Path) -> None:
    project = make_project(tmp_path, AUTO)
    with Controller(project, by="a") as controller:
        auto = AutoCheck(controller, idle_s=3.0)
        assert auto.run_due() == 3.0
        assert (auto.checks, auto.failures) == (0, 0)


def test_the_file_leader_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    one, two = FileLeader(tmp_path / "x.lock"), FileLeader(tmp_path / "x.lock")
    assert one.hold()
    assert one.hold()
    assert not two.hold()
    one.release()
    assert two.hold()
    two.release()


def test_stopping_the_loop_stops_its_child_and_hands_over(tmp_path: Path) -> None:
    project, _ = _checked_project(tmp_path)
    loop = RolloutLoop(child_command(project), leader_lock(project), poll_s=0.1)
    loop.start()
    try:
        _wait(lambda: loop.leading, 10.0, "the child")
        child = loop.child
        assert child is not None
    finally:
        loop.stop()
    assert child.poll() is not None
    other = leader_lock(project)
    assert other.hold()
    other.release()


def test_the_postgres_leader_is_one_session_and_freed_when_it_ends(postgres_url: str) -> None:
    key = f"test-{time.monotonic_ns()}"
    one, two = PostgresLeader(postgres_url, key), PostgresLeader(postgres_url, key)
    try:
        assert one.hold()
        assert one.hold()
        assert not two.hold()
        one.release()  # as a dead process's session ends
        assert two.hold()
        assert not one.hold()
    finally:
        one.release()
        two.release()
