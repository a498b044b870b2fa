"""A project whose registry holds version 1 in production and version 2 as a candidate (no
training: the versions' metadata and a placeholder artifact), and a driver that replays
rollout traffic through the real controller, one check after each batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from taxiway.models.registry import NewVersion, open_registry
from taxiway.rollout.controller import CheckResult, Controller
from taxiway.spec.project import Project

from .traffic import Traffic

T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)

SPEC = """\
name: churn
sources:
  orders: {{kind: file, path: data/orders.parquet, timestamp: ordered_at}}
entities: {{customer: customer_id}}
serving: {{latency_budget_ms: 50}}
rollout:
{rollout}
"""

ROLLOUT = """\
  steps: [5, 10, 25, 50, 100]
  min_duration: 10m
  min_units: 50
  metric: {name: converted, min_effect: 0.05}
"""


def new_version(name: str = "churn") -> NewVersion:
    return NewVersion(
        name=name,
        created_by="ana",
        algorithm="lightgbm",
        task="classification",
        metrics={"model": {"roc_auc": 0.8}},
        features=["orders__count_30d"],
        definitions_hash="d",
        spec_hash="s",
        git_commit=None,
        training={},
        lineage={},
        profile={},
        serving={"form": "onnx"},
    )


def make_project(folder: Path, rollout: str = ROLLOUT, *, versions: int = 2) -> Project:
    """The spec in ``folder`` with ``rollout`` (indented YAML), version 1 in production and
    versions 2.. as candidates."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "taxiway.yaml").write_text(SPEC.format(rollout=rollout.rstrip("\n")))
    project = Project.load(folder / "taxiway.yaml")
    artifacts = folder / "trained"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "model.onnx").write_bytes(b"placeholder")
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        for _ in range(versions):
            registry.register(new_version(), artifacts)
        registry.set_stage("churn", 1, "production", by="ana")
    finally:
        registry.close()
    return project


def replay(
    controller: Controller,
    traffic: Traffic,
    *,
    new: int,
    returning: int = 0,
    every: timedelta = timedelta(minutes=5),
    max_checks: int = 40,
    start: datetime = T0,
) -> Iterator[tuple[float, CheckResult]]:
    """Per batch: units visit at the rollout's share (``new`` new ones, ``returning``
    earlier ones) over ``every``, then one check; until the rollout ends or ``max_checks``.
    Yields the share the batch ran at and the check."""
    now = start
    for _ in range(max_checks):
        state = controller.store.active(controller.name)
        if state is None or state.state != "running":
            return
        traffic.visit(state.share, now, new=new, returning=returning, span_s=every.total_seconds())
        now += every
        yield state.share, controller.check(now=now)
