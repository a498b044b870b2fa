"""The retrain's sign-off gate on the retail example: a routine retrain reuses the standing
sign-offs (recorded in the approvals log, which still verifies); a new feature calls a person."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import retail_shop

from taxiway.cli import main
from taxiway.models.registry import open_registry
from taxiway.rollout.retrain import read_runs, run_retrain
from taxiway.spec.project import Project
from taxiway.sprint.approvals import (
    ApprovalsLog,
    missing_approvals,
    record_approval,
    routine_retrains,
)

AS_OF = datetime(2025, 12, 31, tzinfo=UTC)
ROLES = ("security", "privacy", "business")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retail_shop(tmp_path_factory.mktemp("shop"), customers=400)


def _in_production(shop: Path, folder: Path, retrain: str, *, features: str | None) -> Project:
    """The retail spec (its three sign-offs given) in ``folder`` with ``retrain`` as its
    policy and v1 in production; v1 reads only ``features`` when given."""
    for item in ("data", "contracts"):
        (folder / item).symlink_to(shop.parent / item)
    spec = folder / "taxiway.yaml"
    text = f"{shop.read_text()}\nretrain: {retrain}\n"
    first = text
    if features is not None:
        first = text.replace(
            "  baseline_feature: customer_orders__order_count_30d",
            f"  baseline_feature: customer_orders__order_count_30d\n  features: [{features}]",
        )
    spec.write_text(first)
    state = folder / ".taxiway"
    assert main(["train", "-f", str(spec), "--state-dir", str(state)]) == 0
    spec.write_text(text)
    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, 1, "production", by="test")
    finally:
        registry.close()
    for role in ROLES:
        record_approval(project, role, f"{role} lead", note="reviewed v1")
    assert missing_approvals(project) == []
    return project


def test_a_routine_retrain_reuses_the_standing_sign_offs_and_starts_its_rollout(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _in_production(
        shop, tmp_path, "{auto_rollout: true, signoff: {max_metric_drop: 0.05}}", features=None
    )
    result = run_retrain(project, as_of=AS_OF, signoffs=ApprovalsLog())
    assert result.gate == "rollout_started", result.reason
    assert result.signoff is not None
    assert result.signoff["routine"]
    assert "routine: reuses the standing sign-offs" in result.reason
    [record] = routine_retrains(project)
    assert record.by == "taxiway retrain"
    assert record.note is not None
    assert record.note.startswith(f"v{result.candidate}: routine")
    for role in ROLES:
        assert f"{role}: {role} lead at" in record.note
    assert missing_approvals(project) == []  # the record is no sign-off
    capsys.readouterr()
    assert main(["approve", "--verify", "-f", str(project.spec_path)]) == 0
    [run] = read_runs(project)
    assert run["gate"] == "rollout_started"
    # the run record says where the time went: every stage it reached, and the whole run,
    # which holds them all
    timings = run["timings_s"]
    stages = {stage for stage in timings if "." not in stage} - {"total"}
    assert stages == {"contract", "training_set", "train", "production", "audit", "rollout"}
    assert all(seconds >= 0 for seconds in timings.values())
    assert timings["total"] >= sum(timings[stage] for stage in stages)
    assert {"train.model", "train.evaluate", "train.register"} <= set(timings)


def test_without_the_approvals_log_a_routine_retrain_still_stops_at_candidate(
    shop: Path, tmp_path: Path
) -> None:
    project = _in_production(shop, tmp_path, "{auto_rollout: true, signoff: {}}", features=None)
    result = run_retrain(project, as_of=AS_OF)
    assert result.gate == "candidate"
    assert "the approvals log was not passed" in result.reason
    assert routine_retrains(project) == []


def test_a_new_feature_needs_the_sign_offs_again(shop: Path, tmp_path: Path) -> None:
    few = "customer_orders__order_count_30d, customer_orders__order_count_7d"
    project = _in_production(shop, tmp_path, "{auto_rollout: true, signoff: {}}", features=few)
    result = run_retrain(project, as_of=AS_OF, signoffs=ApprovalsLog())
    assert result.gate == "candidate", result.reason
    assert result.signoff is not None
    assert not result.signoff["routine"]
    assert "not a routine retrain (new features: " in result.reason
    assert routine_retrains(project) == []
    assert result.rollout is None
