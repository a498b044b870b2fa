"""`taxiway models history` from what the registry, the rollout store and the retrain runs
recorded: why each version was trained, production on the same rows, the rollout's decision,
and the time from the trigger to full traffic (unknown where nothing was recorded)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taxiway.cli import main
from taxiway.models.registry import NewVersion, open_registry
from taxiway.models.retrain import RetrainResult
from taxiway.rollout.history import history_fact, history_lines, model_history
from taxiway.rollout.retrain import record_run
from taxiway.rollout.state import open_rollout_store
from taxiway.spec.project import Project

TRIGGERED = datetime(2026, 1, 5, tzinfo=UTC)


def _project(folder: Path) -> Project:
    spec = folder / "taxiway.yaml"
    spec.write_text("name: shop\nretrain: {on: [drift], auto_rollout: true}\n")
    return Project.load(spec)


def _register(project: Project, folder: Path, score: float, retrain: dict[str, Any] | None) -> int:
    trained = folder / f"trained{score}"
    trained.mkdir()
    (trained / "model.onnx").write_bytes(b"...")
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        new = NewVersion(
            name="shop",
            created_by="taxiway retrain" if retrain else "ana",
            algorithm="lightgbm",
            task="classification",
            metrics={
                "metric": "roc_auc",
                "model": {"roc_auc": score},
                "baseline": {"roc_auc": 0.6},
            },
            features=["orders__count_30d"],
            definitions_hash="d1",
            spec_hash="s1",
            git_commit=None,
            training={},
            lineage={"retrain": retrain} if retrain else {},
            profile={},
            serving={},
        )
        return registry.register(new, trained).version
    finally:
        registry.close()


def _world(tmp_path: Path) -> Project:
    """v1 trained by hand (production), v2 a drift retrain rolled out to full traffic 30 h
    after its trigger, v3 a cadence retrain worse than production (archived)."""
    project = _project(tmp_path)
    assert _register(project, tmp_path, 0.80, None) == 1
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        registry.set_stage("shop", 1, "production", by="ana")
    finally:
        registry.close()
    drift = {"trigger": "drift:orders__count_30d", "as_of": TRIGGERED.isoformat(),
             "previous": 1, "production": 1, "window": {"start": None, "end": None},
             "new_rows": 12000}  # fmt: skip
    assert _register(project, tmp_path, 0.83, drift) == 2
    record_run(
        project,
        RetrainResult(
            name="shop", gate="rollout_started", as_of=TRIGGERED, trigger="drift:orders__count_30d",
            reason="", candidate=2, production=1, metric="roc_auc",
            scores={"candidate": 0.83, "production": 0.79, "baseline": 0.6},
        ),
    )  # fmt: skip
    store = open_rollout_store(None, project.state_dir)
    try:
        started = store.start(
            name="shop", salt="s", control={"kind": "version", "version": 1, "constant": None},
            candidate=2, unit=None, steps=[5.0, 100.0], plan={}, by="taxiway retrain",
            now=TRIGGERED + timedelta(hours=1),
        )  # fmt: skip
        store.update(
            started, by="controller", kind="complete", state="complete", share=100.0,
            step_index=1, now=TRIGGERED + timedelta(hours=30),
        )  # fmt: skip
    finally:
        store.close()
    cadence = {**drift, "trigger": "cadence", "previous": 2, "new_rows": 9000}
    assert _register(project, tmp_path, 0.78, cadence) == 3
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        registry.set_stage(
            "shop", 3, "archived", by="taxiway retrain",
            note="worse_than_production: on the same validation rows, roc_auc is 0.78 ...",
        )  # fmt: skip
    finally:
        registry.close()
    return project


def test_each_version_says_why_how_it_compared_what_the_rollout_decided_and_how_long(
    tmp_path: Path,
) -> None:
    first, drift, worse = model_history(_world(tmp_path))
    assert first.why == "trained by hand (`taxiway train`, by ana)"
    assert first.rollout is None
    assert first.trigger_to_full_traffic_s is None
    assert drift.why == "drift on orders__count_30d"
    assert (drift.score, drift.production_score, drift.production) == (0.83, 0.79, 1)
    assert drift.rollout is not None
    assert drift.rollout["state"] == "complete"
    assert drift.rollout["decided_at"] == (TRIGGERED + timedelta(hours=30)).isoformat()
    assert drift.trigger_to_full_traffic_s == 30 * 3600
    assert worse.why == "cadence"
    assert worse.gate == "worse_than_production"
    assert worse.production_score is None  # no run recorded it: unknown, not guessed
    assert worse.rollout is None
    assert worse.trigger_to_full_traffic_s is None


def test_the_lines_say_unknown_where_nothing_was_recorded(tmp_path: Path) -> None:
    lines = history_lines(model_history(_world(tmp_path)))
    assert lines[1] == (
        "v2 (candidate): drift on orders__count_30d; roc_auc 0.83 vs production v1 0.79 on the "
        f"same rows; rollout 1 complete at {(TRIGGERED + timedelta(hours=30)).isoformat()}; "
        "trigger to full traffic 30.0 h"
    )
    assert (
        "vs production v1 unknown on the same rows; stopped at worse_than_production" in (lines[2])
    )
    assert lines[2].endswith("trigger to full traffic unknown")


def test_models_history_json_and_the_report_fact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _world(tmp_path)
    capsys.readouterr()
    assert main(["models", "history", "-f", str(project.spec_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in rows] == [1, 2, 3]
    assert rows[1]["trigger_to_full_traffic_s"] == 30 * 3600
    fact = history_fact(project)
    assert fact["lines"] == history_lines(model_history(project))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert history_fact(_project(empty)) == {}  # nothing registered: no section
