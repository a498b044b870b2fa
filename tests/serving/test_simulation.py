"""`taxiway rollout simulate`: a rollout rehearsed through the real service (its assignment,
arms and prediction log) and the real controller, in a folder of its own."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.serving.conftest import variant
from tests.serving.rollout_world import rollout_shop

from taxiway.cli import main
from taxiway.rollout.replay import ReplayPoint
from taxiway.serving.simulation import rehearse
from taxiway.spec.project import Project

__all__ = ["rollout_shop"]  # the fixture, used by these tests


def _plan(steps: str, min_duration: str = "10m", min_effect: float = 0.01) -> str:
    return (
        f"rollout:\n  steps: {steps}\n  min_duration: {min_duration}\n  min_units: 100\n"
        f"  check_every: 10m\n  metric: {{name: converted, min_effect: {min_effect}}}\n"
    )


def _project(rollout_shop: Path, folder: Path, plan: str) -> Project:
    """The rollout shop's spec with ``plan`` as its `rollout:` section, over the shop's
    state (its registry holds v1 in production and v2 a candidate)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = re.sub(r"\nrollout:\n(?:  .*\n)+", "\n" + plan, rollout_shop.read_text())
    assert plan in text
    return Project.load(variant(rollout_shop, folder, text), rollout_shop.parent / ".taxiway")


def _records(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _why(folder: Path) -> str:
    """The last verdict's reasons, for a failing assertion's message."""
    from taxiway.rollout.state import open_rollout_store

    store = open_rollout_store(None, folder / "state")
    try:
        rollouts = [store.latest(name) for name in ("retail_churn",)]
        return "; ".join(
            "no verdict yet" if r.verdict is None else str(r.verdict.get("reasons"))
            for r in rollouts
            if r is not None
        )
    finally:
        store.close()


def _untouched(project: Project) -> None:
    state = project.state_dir
    assert not (state / "rollout").exists()
    assert not list((state / "predictions").glob("*.jsonl"))


def test_the_outcomes_follow_the_arm_each_answer_in_the_log_names(
    rollout_shop: Path, tmp_path: Path
) -> None:
    # the candidate always converts (0.5 x 2), control half the time: joined by unit, every
    # candidate answer has its outcome, and control's have one about half the time
    # (held at 50% throughout: the step lasts longer than the rehearsal)
    project = _project(rollout_shop, tmp_path / "spec", _plan("[50, 100]", min_duration="10h"))
    folder = tmp_path / "rehearsal"

    points = rehearse(
        project, folder, lift=1.0, base=0.5, units=1200, duration=timedelta(hours=2), seed=3
    )

    state = folder / "state"
    answers = _records(state / "predictions")
    outcomes = {record["unit"] for record in _records(state / "outcomes")}
    assert len(answers) == 1200
    assert {a["unit"] for a in answers} == {f"user-{n}" for n in range(1200)}
    by_arm: dict[str, list[bool]] = {"control": [], "candidate": []}
    for answer in answers:
        assert answer["model_version"] == (2 if answer["arm"] == "candidate" else 1)
        by_arm[answer["arm"]].append(answer["unit"] in outcomes)
    assert len(by_arm["candidate"]) > 450
    assert all(by_arm["candidate"])
    assert 0.4 < sum(by_arm["control"]) / len(by_arm["control"]) < 0.6
    # every outcome names a unit the service answered
    assert outcomes <= {a["unit"] for a in answers}
    assert isinstance(points[0], ReplayPoint)
    assert points[0].share == 50.0
    _untouched(project)


def test_a_true_lift_of_5_percent_reaches_complete(rollout_shop: Path, tmp_path: Path) -> None:
    project = _project(rollout_shop, tmp_path / "spec", _plan("[50, 100]"))

    points = rehearse(project, tmp_path / "rehearsal", lift=0.05, base=0.5, units=40_000, seed=1)

    last = points[-1]
    why = _why(tmp_path / "rehearsal")
    assert (last.verdict, last.state, last.share) == ("complete", "complete", 50.0), why
    assert last.low is not None
    assert last.low > 0
    # the interval narrowed as units came in (the rehearsal's salt comes from its seed, so
    # this run is the same every time: it completes once the lower bound clears 0)
    widths = [p.high - p.low for p in points if p.high is not None and p.low is not None]
    assert widths[-1] < 0.75 * widths[0]


def test_harm_of_5_percent_rolls_back_before_the_25_percent_step(
    rollout_shop: Path, tmp_path: Path
) -> None:
    # every unit arrives within the first step (10 hours at 10%): the harm (90% of control's
    # customers convert, 85.5% of the candidate's) is seen there and rolled back
    plan = _plan("[10, 25, 50, 100]", min_duration="10h")
    project = _project(rollout_shop, tmp_path / "spec", plan)

    points = rehearse(
        project,
        tmp_path / "rehearsal",
        lift=-0.05,
        base=0.9,
        units=50_000,
        duration=timedelta(hours=10),
        seed=2,
    )

    last = points[-1]
    why = _why(tmp_path / "rehearsal")
    assert (last.verdict, last.state) == ("rollback", "rolled_back"), why
    assert max(p.share for p in points) < 25, (points, why)
    assert last.high is not None
    assert last.high < 0


def test_the_command_prints_each_step_and_writes_the_chart(
    rollout_shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(rollout_shop, tmp_path / "spec", _plan("[20, 50, 100]", min_effect=0.1))
    out = tmp_path / "sim"

    code = main(
        [
            "rollout", "simulate", "-f", str(project.spec_path),
            "--state-dir", str(project.state_dir), "--lift", "1.0", "--base", "0.2",
            "--units", "3000", "--hours", "2", "--out", str(out),
        ]
    )  # fmt: skip

    printed = capsys.readouterr().out
    assert code == 0
    assert "complete at 50%" in printed
    checks = json.loads((out / "simulation.json").read_text())["checks"]
    assert [c["verdict"] for c in checks if c["verdict"] != "hold"] == [
        "promote",
        "complete",
    ]
    assert (out / "simulation.svg").read_text().startswith("<svg")
    _untouched(project)


def test_a_project_without_a_trained_version_is_told_to_train(tmp_path: Path) -> None:
    from tests.rollout.world import make_project

    from taxiway.errors import RolloutError
    from taxiway.models.registry import open_registry

    project = make_project(tmp_path / "shop")
    registry = open_registry(None, state_dir=tmp_path / "empty")
    registry.close()
    empty = Project(project.spec, project.spec_path, tmp_path / "empty")

    with pytest.raises(RolloutError, match="taxiway train"):
        rehearse(empty, tmp_path / "rehearsal", lift=0.05, base=0.1, units=10)
