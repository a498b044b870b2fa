"""The finished retrain runs in the registry's database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from taxiway.errors import ModelError
from taxiway.models.retrain_runs import (
    PostgresRetrainRuns,
    RetrainRuns,
    SqliteRetrainRuns,
    read_retrain_runs,
    record_retrain_run,
)
from taxiway.spec.project import Project


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> RetrainRuns:
    if request.param == "sqlite":
        return SqliteRetrainRuns(tmp_path / "registry.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    return PostgresRetrainRuns(url, schema=f"runs_{uuid.uuid4().hex[:8]}")


def _run(name: str, gate: str, candidate: int | None) -> dict[str, object]:
    return {"name": name, "gate": gate, "candidate": candidate, "scores": {"production": 0.7}}


def test_runs_are_read_back_per_model_in_order_and_an_id_is_recorded_once(
    backend: RetrainRuns,
) -> None:
    assert backend.read("churn") == []
    backend.add([("a", _run("churn", "candidate", 1)), ("b", _run("other", "audit", 1))])
    backend.add([("c", _run("churn", "no_new_data", None))])
    backend.add([("a", _run("churn", "baseline", 9))])  # the same id again: skipped
    assert [(r["gate"], r["candidate"]) for r in backend.read("churn")] == [
        ("candidate", 1),
        ("no_new_data", None),
    ]
    assert [r["gate"] for r in backend.read("other")] == ["audit"]


def test_an_old_runs_file_is_imported_once_and_a_torn_line_skipped(tmp_path: Path) -> None:
    spec = tmp_path / "taxiway.yaml"
    spec.write_text("name: churn\n")
    project = Project.load(spec)
    old = project.state_dir / "retrain" / "runs.jsonl"
    old.parent.mkdir(parents=True)
    lines = [json.dumps(_run("churn", "candidate", 1)), json.dumps(_run("churn", "audit", 2))]
    old.write_text("\n".join(lines) + '\n{"name": "churn", "ga')
    # an import cut short (the rows committed, the file not yet renamed) is redone, no doubles
    SqliteRetrainRuns(project.state_dir / "registry.sqlite").add(
        [(f"jsonl:{hashlib.sha256(lines[0].encode()).hexdigest()}",
          _run("churn", "candidate", 1))]
    )  # fmt: skip
    assert [r["candidate"] for r in read_retrain_runs(project)] == [1, 2]
    assert not old.exists()
    assert (old.parent / "runs.jsonl.imported").exists()
    record_retrain_run(project, "new", _run("churn", "no_new_data", None))
    assert [r["gate"] for r in read_retrain_runs(project)] == ["candidate", "audit", "no_new_data"]


def test_an_unreachable_registry_is_a_model_error_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "registry.sqlite").mkdir()  # a folder where the file should be
    with pytest.raises(ModelError) as caught:
        SqliteRetrainRuns(tmp_path / "registry.sqlite").read("churn")
    assert caught.value.fix is not None
    unreachable = PostgresRetrainRuns(
        "postgresql://nobody@127.0.0.1:1/none", schema="s", connect_timeout_s=1
    )
    with pytest.raises(ModelError, match="retrain runs"):
        unreachable.read("churn")
