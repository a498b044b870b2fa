"""The parts of a retrain that need no training: the sliding window, new rows, the policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from taxiway.errors import ModelError
from taxiway.features.training_set import TrainingSetManifest
from taxiway.models.registry import ModelVersion
from taxiway.models.retrain import RetrainResult, new_source_rows, windowed_project
from taxiway.spec.models import Retrain, TaxiwaySpec
from taxiway.spec.project import Project


def _project(retrain: dict[str, Any], spine: dict[str, Any] | None = None) -> Project:
    spec = TaxiwaySpec.model_validate(
        {
            "name": "shop",
            "spine": spine
            or {"every": "7d", "start": "2024-01-01", "end": "2025-06-30", "source": "orders"},
            "label": {
                "name": "churned",
                "kind": "no_event",
                "source": "orders",
                "entity": "customer",
                "horizon": "60d",
            },
            "retrain": retrain,
        }
    )
    return Project(spec, Path("taxiway.yaml"))


def test_the_window_slides_and_stops_where_labels_are_observed() -> None:
    project = _project({"window": "90d"})
    cut, window = windowed_project(project, datetime(2025, 3, 31, tzinfo=UTC))
    assert window == {"start": "2024-12-31T00:00:00", "end": "2025-01-30T00:00:00"}
    assert cut.spec.spine is not None
    assert cut.spec.spine.model_dump()["end"] == datetime(2025, 1, 30)
    assert project.spec.spine is not None  # the project itself is unchanged
    assert project.spec.spine.model_dump()["end"].isoformat() == "2025-06-30"


def test_an_empty_window_says_how_to_fix_it() -> None:
    with pytest.raises(ModelError, match="the training window is empty") as caught:
        windowed_project(_project({"window": "30d"}), datetime(2025, 3, 31, tzinfo=UTC))
    assert "--as-of" in (caught.value.fix or "")


def test_a_window_needs_a_periodic_spine() -> None:
    project = _project({"window": "30d"}, spine={"source": "orders"})
    with pytest.raises(ModelError, match="periodic spine"):
        windowed_project(project, datetime(2025, 3, 31, tzinfo=UTC))


def test_the_policy_rejects_an_unknown_or_repeated_trigger() -> None:
    with pytest.raises(ValidationError):
        Retrain.model_validate({"on": ["weather"]})
    with pytest.raises(ValidationError, match="listed twice"):
        Retrain.model_validate({"on": ["drift", "drift"]})


def _manifest(rows: dict[str, int]) -> TrainingSetManifest:
    return TrainingSetManifest(
        spec="s",
        path="p",
        rows=0,
        spine_rows=0,
        dropped={},
        keys=[],
        features=[],
        label=None,
        definitions_hash="h",
        sources={name: {"rows": n, "fingerprint": str(n)} for name, n in rows.items()},
        built_at="",
        duration_s=0.0,
    )


def _version(rows: dict[str, int]) -> ModelVersion:
    return ModelVersion(
        name="shop",
        version=1,
        stage="production",
        created_at=datetime.now(UTC),
        created_by="t",
        algorithm="lightgbm",
        task="classification",
        metrics={},
        features=[],
        definitions_hash="h",
        spec_hash="s",
        git_commit=None,
        training={"sources": {name: {"rows": n} for name, n in rows.items()}},
        lineage={},
        profile={},
        serving={},
        artifact_dir="/nowhere",
    )


@given(
    before=st.dictionaries(st.sampled_from("abc"), st.integers(0, 10**6)),
    now=st.dictionaries(st.sampled_from("abcd"), st.integers(0, 10**6)),
)
def test_new_rows_count_growth_per_source_never_shrinkage(
    before: dict[str, int], now: dict[str, int]
) -> None:
    counted = new_source_rows(_manifest(now), _version(before))
    assert counted == sum(max(0, n - before.get(name, 0)) for name, n in now.items())
    assert counted is not None
    assert counted >= 0


def test_without_a_previous_version_every_row_is_new() -> None:
    assert new_source_rows(_manifest({"a": 5}), None) is None


@pytest.mark.parametrize(
    ("gate", "code"),
    [
        ("no_new_data", 0),
        ("candidate", 0),
        ("rollout_started", 0),
        ("baseline", 1),
        ("worse_than_production", 1),
        ("audit", 1),
        ("contract", 3),
    ],
)
def test_each_gate_has_its_exit_code(gate: Any, code: int) -> None:
    result = RetrainResult(
        name="shop", gate=gate, as_of=datetime(2025, 1, 1, tzinfo=UTC), trigger="cadence", reason=""
    )
    assert result.exit_code == code
    assert result.as_dict()["gate"] == gate
    assert result.as_dict()["exit_code"] == code
