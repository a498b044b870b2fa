"""The scheduler of `taxiway run` on the retail example, in process: the cadence, the
monitor's alerts (written by the monitor's own alert sinks), once per alert episode."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import retail_shop

from taxiway.models.registry import open_registry
from taxiway.monitoring.alerts import Alert, AlertSinks
from taxiway.rollout.history import model_history
from taxiway.rollout.retrain import read_runs
from taxiway.rollout.run import Scheduler
from taxiway.spec.project import Project

AS_OF = datetime(2025, 12, 31, tzinfo=UTC)
"""The data ends at the start of 2026; the 60-day label is observed up to here."""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retail_shop(tmp_path_factory.mktemp("shop"), customers=400)


def _project(shop: Path, folder: Path, retrain: str) -> Project:
    text = shop.read_text().replace("approvals: [security, privacy, business]", "approvals: []")
    for item in ("data", "contracts"):
        (folder / item).symlink_to(shop.parent / item)
    spec = folder / "taxiway.yaml"
    spec.write_text(f"{text}\nretrain: {retrain}\n")
    return Project.load(spec)


def _alert(key: str, kind: str, since: datetime) -> Alert:
    return Alert(key, kind, "ticket", f"{key} fired", "psi 0.31 > 0.12", 0.31, 0.12, since)  # type: ignore[arg-type]


def _versions(project: Project) -> list[int]:
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        return [v.version for v in registry.list(project.spec.name)]
    finally:
        registry.close()


def test_a_drift_alert_triggers_a_retrain_within_one_tick_once_per_episode(
    shop: Path, tmp_path: Path
) -> None:
    project = _project(shop, tmp_path, "{every: 7d, on: [drift], window: 365d, min_new_rows: 1}")
    clock = [AS_OF]
    scheduler = Scheduler(project, clock=lambda: clock[0])
    try:
        first = scheduler.tick()  # no retrain ran yet: the cadence is due
        assert first.led
        assert first.trigger == "cadence"
        assert first.result is not None
        assert first.result.gate == "candidate"
        assert scheduler.tick().trigger is None  # a week has not passed, no alert

        sinks = AlertSinks(project.state_dir / "monitor" / "alerts.json")
        firing = [_alert("drift:price", "drift", AS_OF), _alert("slo:latency", "slo", AS_OF)]
        sinks.send(firing, now=AS_OF)
        drift = scheduler.tick()
        assert drift.trigger == "drift:price"  # slo is not listed in retrain.on
        assert drift.result is not None
        assert drift.result.trigger == "drift:price"
        assert drift.result.gate == "no_new_data"  # the same data: nothing registered

        sinks.send(firing, now=AS_OF + timedelta(minutes=5))  # the same episode, still firing
        assert scheduler.tick().trigger is None

        sinks.send([], now=AS_OF + timedelta(minutes=10))  # resolved
        assert scheduler.tick().trigger is None
        sinks.send(firing[:1], now=AS_OF + timedelta(minutes=15))  # a new episode
        assert scheduler.tick().trigger == "drift:price"

        clock[0] = AS_OF + timedelta(days=7)
        assert scheduler.tick().trigger == "cadence"
        assert scheduler.tick().trigger is None
    finally:
        scheduler.close()
    assert _versions(project) == [1]


def test_a_scheduler_without_the_lock_does_nothing(shop: Path, tmp_path: Path) -> None:
    project = _project(shop, tmp_path, "{every: 7d, min_new_rows: 1}")
    leader = Scheduler(project, clock=lambda: AS_OF)
    other = Scheduler(project, clock=lambda: AS_OF)
    try:
        assert leader.lock.hold()
        waiting = other.tick()
        assert not waiting.led
        assert waiting.trigger is None
        leader.close()
        taken = other.tick()
        assert taken.led
        assert taken.trigger == "cadence"
    finally:
        leader.close()
        other.close()


@pytest.mark.postgres
def test_schedulers_on_two_hosts_share_the_state_in_the_postgres_registry(
    shop: Path, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two state folders (two hosts), one PostgreSQL registry: the second knows the first's
    # retrain from the registry's database, so the cadence is not due again, and its
    # `models history` shows the first host's run (the gate, production's score)
    monkeypatch.setenv("TW_RUN_STATE_URL", postgres_url)
    schema = f"run_{uuid.uuid4().hex[:8]}"
    registry = f"{{kind: postgres, url: '${{TW_RUN_STATE_URL}}', schema: {schema}}}"
    hosts = [tmp_path / "a", tmp_path / "b"]
    projects = []
    for host in hosts:
        host.mkdir()
        project = _project(shop, host, "{every: 7d, min_new_rows: 1}\nregistry: " + registry)
        projects.append(project)
    first = Scheduler(projects[0], clock=lambda: AS_OF)
    try:
        ran = first.tick()
    finally:
        first.close()
    assert ran.trigger == "cadence"
    assert ran.result is not None
    [seen] = model_history(projects[1])
    assert (seen.version, seen.gate) == (ran.result.candidate, ran.result.gate)
    assert read_runs(projects[1]) == read_runs(projects[0])
    assert [run["gate"] for run in read_runs(projects[1])] == [ran.result.gate]
    second = Scheduler(projects[1], clock=lambda: AS_OF + timedelta(days=1))
    try:
        assert second.tick().trigger is None
    finally:
        second.close()
    assert not (hosts[0] / ".taxiway" / "run").exists()  # no local state file
