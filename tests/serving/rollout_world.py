"""A shop with two versions (v1 in production, v2 a candidate: the same trained files) and its
own state folder, for the rollout's serving tests; and helpers writing a rollout's state
straight into the rollout store, as the controller would."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.serving.conftest import variant

from taxiway.cli import main
from taxiway.models.registry import NewVersion, open_registry
from taxiway.rollout.state import RolloutState, RolloutStore, open_rollout_store
from taxiway.spec.project import Project

__all__ = ["rollout_shop", "start", "store_of", "two_versions"]


@pytest.fixture(scope="session")
def rollout_shop(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served shop's data and v1 files, registered twice in a state of its own (v1
    production, v2 a candidate), its online store materialized."""
    return two_versions(shop, tmp_path_factory.mktemp("rollout-shop"))


def two_versions(shop: Path, folder: Path, *, production: bool = True) -> Path:
    """``shop``'s v1 registered twice in ``folder``'s own state (v1 in production unless not
    ``production``), the online store materialized; the spec's path."""
    spec = variant(shop, folder)
    source = Project.load(shop)
    trained = open_registry(source.spec.registry, state_dir=source.state_dir)
    try:
        v1 = trained.get(source.spec.name, 1)
    finally:
        trained.close()
    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        fields = {f.name for f in dataclasses.fields(NewVersion)}
        new = NewVersion(**{k: v for k, v in v1.as_dict().items() if k in fields})
        for _ in range(2):
            registry.register(new, Path(v1.artifact_dir))
        if production:
            registry.set_stage(project.spec.name, 1, "production", by="tests")
    finally:
        registry.close()
    assert main(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"]) == 0
    return spec


def store_of(spec: Path) -> RolloutStore:
    """The rollout store of ``spec`` (close it)."""
    project = Project.load(spec)
    return open_rollout_store(project.spec.registry, project.state_dir)


@dataclasses.dataclass
class Started:
    """A rollout written into the store, and the store to change it through."""

    store: RolloutStore
    state: RolloutState

    def update(self, **changes: Any) -> RolloutState:
        """Change the stored rollout (as the controller would) and keep the new state."""
        self.state = self.store.update(self.state, by="tests", kind="test", **changes)
        return self.state


def start(
    spec: Path,
    *,
    control: dict[str, Any] | None = None,
    unit: str | None = None,
    steps: list[float] | None = None,
    salt: str = "salt-1",
) -> Iterator[Started]:
    """Start a rollout of v2 against ``control`` (v1 by default); abort it after."""
    project = Project.load(spec)
    store = store_of(spec)
    try:
        state = store.start(
            name=project.spec.name,
            salt=salt,
            control=control or {"kind": "version", "version": 1, "constant": None},
            candidate=2,
            unit=unit,
            steps=steps or [1.0, 5.0, 10.0, 25.0, 50.0, 100.0],
            plan={},
            by="tests",
        )
        started = Started(store, state)
        yield started
        latest = store.get(started.state.id)
        if latest.active:
            store.update(latest, by="tests", kind="abort", state="aborted")
    finally:
        store.close()
