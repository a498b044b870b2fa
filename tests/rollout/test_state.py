"""The rollout store, one suite over both backends: the registry's SQLite file and its
PostgreSQL database (the real server; skipped on a laptop without it, failed in CI)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from taxiway.errors import RolloutError
from taxiway.models.registry import open_registry
from taxiway.rollout.state import RolloutState, RolloutStore, open_rollout_store
from taxiway.spec.models import PostgresRegistry, SqliteRegistry

Spec = SqliteRegistry | PostgresRegistry | None


def _execute(spec: Spec, state_dir: Path, statement: str) -> None:
    """Run ``statement`` on the database directly, bypassing the store (a tamperer)."""
    if isinstance(spec, PostgresRegistry):
        import psycopg

        url = spec.url.reveal()
        with psycopg.connect(url, options=f"-c search_path={spec.schema_name}") as conn:
            conn.execute(statement)
        return
    connection = sqlite3.connect(state_dir / "registry.sqlite")
    with connection:
        connection.execute(statement)
    connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spec]:
    if request.param == "sqlite":
        yield None
        return
    url: str = request.getfixturevalue("postgres_url")
    schema = f"tw_{uuid4().hex[:10]}"
    spec = PostgresRegistry.model_validate({"kind": "postgres", "url": url, "schema": schema})
    yield spec
    _execute(spec, tmp_path, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def opener(spec: Spec, tmp_path: Path) -> Iterator[Callable[[], RolloutStore]]:
    opened: list[RolloutStore] = []

    def open_store() -> RolloutStore:
        store = open_rollout_store(spec, tmp_path)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Callable[[], RolloutStore]) -> RolloutStore:
    return opener()


def start(store: RolloutStore, name: str = "churn", **changes: Any) -> RolloutState:
    fields: dict[str, Any] = {
        "name": name,
        "salt": f"{name}-salt",
        "control": {"kind": "version", "version": 1, "constant": None},
        "candidate": 2,
        "unit": "customer_id",
        "steps": [1.0, 5.0, 25.0, 100.0],
        "plan": {"steps": [1.0, 5.0, 25.0, 100.0], "alpha": 0.05},
        "by": "ana",
        "evidence": {"candidate": "newest audited"},
    }
    fields.update(changes)
    return store.start(**fields)


def test_a_started_rollout_is_active_at_its_first_step(store: RolloutStore) -> None:
    assert store.active("churn") is None
    assert store.latest("churn") is None
    before = datetime.now(UTC)

    started = start(store)

    active = store.active("churn")
    assert active == started
    assert active.state == "running"
    assert (active.step_index, active.share) == (0, 1.0)
    assert active.control == {"kind": "version", "version": 1, "constant": None}
    assert active.plan["alpha"] == 0.05
    assert before <= active.started_at <= datetime.now(UTC)
    assert active.started_at.tzinfo is not None
    assert store.latest("churn") == started
    assert store.active("other") is None


def test_one_active_rollout_per_model(store: RolloutStore) -> None:
    start(store)
    with pytest.raises(RolloutError, match="running rollout already"):
        start(store)
    start(store, "basket")  # another model may roll out at the same time
    assert store.active("basket") is not None


def test_transitions_change_the_row_and_append_events(store: RolloutStore) -> None:
    started = start(store)
    later = started.started_at + timedelta(hours=1)

    promoted = store.update(
        started,
        by="controller",
        kind="promote",
        evidence={"units": {"control": 990, "candidate": 10}},
        now=later,
        step_index=1,
        share=5.0,
        step_started_at=later,
        verdict={"kind": "promote"},
    )
    held = store.update(promoted, by="controller", kind=None, verdict={"kind": "hold"})
    rolled = store.update(held, by="controller", kind="rollback", state="rolled_back", share=0.0)

    assert store.active("churn") is None
    assert store.latest("churn") == rolled
    assert (rolled.state, rolled.share, rolled.revision) == ("rolled_back", 0.0, 3)
    assert store.get(started.id).verdict == {"kind": "hold"}
    events = store.events(started.id)
    assert [(e.kind, e.from_state, e.to_state, e.share) for e in events] == [
        ("start", None, "running", 1.0),
        ("promote", "running", "running", 5.0),
        ("rollback", "running", "rolled_back", 0.0),
    ]
    assert events[1].evidence == {"units": {"control": 990, "candidate": 10}}
    assert events[1].at == later
    assert store.verify() == 3
    assert start(store).id == started.id + 1  # a finished rollout frees the name


def test_an_update_from_a_stale_read_is_refused(store: RolloutStore) -> None:
    started = start(store)
    store.update(started, by="ana", kind="pause", state="paused")

    with pytest.raises(RolloutError, match="changed while"):
        store.update(started, by="controller", kind="promote", step_index=1, share=5.0)
    assert store.active("churn").state == "paused"  # type: ignore[union-attr]
    assert len(store.events(started.id)) == 2


def test_state_survives_reopening_and_is_shared(opener: Callable[[], RolloutStore]) -> None:
    first, second = opener(), opener()
    started = start(first)
    first.update(started, by="c", kind="promote", step_index=1, share=5.0)
    first.close()

    reopened = opener()
    assert reopened.active("churn") == second.active("churn")
    assert reopened.active("churn").share == 5.0  # type: ignore[union-attr]
    assert reopened.verify() == 2


def test_the_chain_detects_an_edited_event(store: RolloutStore, spec: Spec, tmp_path: Path) -> None:
    started = start(store)
    store.update(started, by="c", kind="promote", evidence={"diff": 0.01}, step_index=1, share=5)
    assert store.verify() == 2

    _execute(spec, tmp_path, "UPDATE rollout_events SET evidence = '{\"diff\":0.5}' WHERE seq = 2")

    with pytest.raises(RolloutError, match="event 2 was edited"):
        store.verify()


def test_the_chain_detects_a_deleted_event(store: RolloutStore, spec: Spec, tmp_path: Path) -> None:
    started = start(store)
    promoted = store.update(started, by="c", kind="promote", step_index=1, share=5.0)
    store.update(promoted, by="c", kind="pause", state="paused")

    _execute(spec, tmp_path, "DELETE FROM rollout_events WHERE seq = 2")

    with pytest.raises(RolloutError, match="event 3 has seq 3, expected 2"):
        store.verify()


def test_the_chain_detects_a_rewritten_link(
    store: RolloutStore, spec: Spec, tmp_path: Path
) -> None:
    start(store)
    start(store, "basket")
    _execute(spec, tmp_path, "UPDATE rollout_events SET prev = hash WHERE seq = 2")

    with pytest.raises(RolloutError, match="event 2 does not follow"):
        store.verify()


def test_the_tables_share_the_registry_database(spec: Spec, tmp_path: Path) -> None:
    registry = open_registry(spec, state_dir=tmp_path)
    store = open_rollout_store(spec, tmp_path)
    try:
        assert registry.names() == []
        start(store)
        assert registry.names() == []  # the registry's tables are untouched
        assert store.active("churn") is not None
    finally:
        store.close()
        registry.close()


def test_a_sqlite_spec_path_is_honoured(tmp_path: Path) -> None:
    spec = SqliteRegistry(kind="sqlite", path=str(tmp_path / "elsewhere" / "reg.sqlite"))
    store = open_rollout_store(spec, tmp_path / "state")
    try:
        start(store)
    finally:
        store.close()
    assert (tmp_path / "elsewhere" / "reg.sqlite").exists()
    assert not (tmp_path / "state").exists()


def test_a_closed_store_says_so(store: RolloutStore) -> None:
    store.close()
    with pytest.raises(RolloutError, match="closed"):
        store.active("churn")


def test_unknown_changes_and_states_are_refused(store: RolloutStore) -> None:
    started = start(store)
    with pytest.raises(TypeError):
        store.update(started, by="c", kind=None, candidate=3)
    with pytest.raises(RolloutError, match="not a rollout state"):
        store.update(started, by="c", kind=None, state="finished")
    with pytest.raises(RolloutError, match="no rollout 99"):
        store.get(99)


def test_as_dict_is_json_ready(store: RolloutStore) -> None:
    import json

    started = start(store)
    data = json.loads(json.dumps(started.as_dict()))
    assert data["state"] == "running"
    assert datetime.fromisoformat(data["started_at"]) == started.started_at
    event = store.events(started.id)[0]
    assert json.loads(json.dumps(event.as_dict()))["kind"] == "start"
