"""Training with ``reuse``: a version trained from the same inputs is returned, not duplicated.

The sprint trains with ``reuse`` so running it twice on unchanged data registers one version;
anything the model depends on (the spec's model or label section, the data, an archived
version, missing artifacts) makes a new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.conftest import retail_shop

from taxiway.models.registry import open_registry
from taxiway.models.training import train_model
from taxiway.spec.project import Project


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return retail_shop(tmp_path / "shop", customers=300)


def _versions(project: Project) -> list[int]:
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        return [v.version for v in registry.list(project.spec.name)]
    finally:
        registry.close()


def test_the_same_inputs_reuse_the_version_and_a_changed_model_section_does_not(
    shop: Path,
) -> None:
    first = train_model(Project.load(shop), reuse=True)
    assert first.reused_model is False
    again = train_model(Project.load(shop), reuse=True)
    assert again.reused_model is True
    assert again.version.version == first.version.version
    assert again.version.training["model_key"] == first.version.training["model_key"]
    assert again.as_dict()["reused_model"] is True
    assert _versions(Project.load(shop)) == [1]

    shop.write_text(shop.read_text().replace("  validation: 0.2", "  validation: 0.25"))
    changed = train_model(Project.load(shop), reuse=True)
    assert changed.reused_model is False
    assert changed.version.version == 2
    assert changed.version.training["model_key"] != first.version.training["model_key"]


def test_without_reuse_a_new_version_is_registered_every_time(shop: Path) -> None:
    train_model(Project.load(shop))
    second = train_model(Project.load(shop))
    assert second.reused_model is False
    assert second.version.version == 2


def test_an_archived_version_or_one_without_artifacts_is_never_reused(shop: Path) -> None:
    project = Project.load(shop)
    first = train_model(project, reuse=True)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, 1, "production", by="test")
        assert train_model(project, registry=registry, reuse=True).version.version == 1
        registry.set_stage(project.spec.name, 1, "archived", by="test")
        second = train_model(project, registry=registry, reuse=True)
        assert second.reused_model is False
        assert second.version.version == 2
        shutil.rmtree(second.version.artifact_dir)
        third = train_model(project, registry=registry, reuse=True)
        assert third.version.version == 3
    finally:
        registry.close()
    assert first.version.training["model_key"] == third.version.training["model_key"]


def test_changed_data_trains_a_new_version(shop: Path) -> None:
    first = train_model(Project.load(shop), reuse=True)
    orders = shop.parent / "data" / "orders.parquet"
    table = pq.read_table(orders)
    pq.write_table(table.slice(0, table.num_rows - 50), orders)  # the newest facts are gone
    second = train_model(Project.load(shop), reuse=True)
    assert second.reused_training_set is False
    assert second.reused_model is False
    assert second.version.version == first.version.version + 1
