"""`taxiway run`'s state in the registry's database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from taxiway.errors import RolloutError
from taxiway.rollout.run_state import PostgresRunState, RunState, SqliteRunState


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> RunState:
    if request.param == "sqlite":
        return SqliteRunState(tmp_path / "registry.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    return PostgresRunState(url, schema=f"run_{uuid.uuid4().hex[:8]}")


def test_a_state_written_is_read_back_per_model_and_replaced_whole(backend: RunState) -> None:
    assert backend.read("churn") == {}
    first = {"last_retrain": {"at": "2026-01-05T00:00:00+00:00"}, "episodes": {"drift:x": "t"}}
    backend.write("churn", first)
    backend.write("other", {"last_retrain": {"at": "2026-02-01T00:00:00+00:00"}})
    assert backend.read("churn") == first
    backend.write("churn", {"episodes": {}})
    assert backend.read("churn") == {"episodes": {}}
    assert backend.read("other")["last_retrain"]["at"] == "2026-02-01T00:00:00+00:00"


def test_two_handles_on_one_registry_share_the_state(tmp_path: Path) -> None:
    # two schedulers (or hosts) sharing a registry: what one wrote, the other reads
    SqliteRunState(tmp_path / "registry.sqlite").write("churn", {"last_retrain": {"at": "t"}})
    assert SqliteRunState(tmp_path / "registry.sqlite").read("churn") == {
        "last_retrain": {"at": "t"}
    }


def test_an_unreachable_registry_is_a_rollout_error_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "registry.sqlite").mkdir()  # a folder where the file should be
    with pytest.raises(RolloutError) as caught:
        SqliteRunState(tmp_path / "registry.sqlite").read("churn")
    assert caught.value.fix is not None
    unreachable = PostgresRunState(
        "postgresql://nobody@127.0.0.1:1/none", schema="s", connect_timeout_s=1
    )
    with pytest.raises(RolloutError, match="scheduler's state"):
        unreachable.read("churn")
