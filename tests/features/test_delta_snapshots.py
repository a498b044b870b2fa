"""Training sets as Delta Lake versions: every `taxiway train` build is a version the registry
names, `--reproduce V` compares a rebuild with it, and retention keeps what models need."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import retail_shop
from typer.testing import CliRunner

from taxiway.cli.app import app
from taxiway.errors import FeatureError
from taxiway.features.snapshots import (
    Snapshot,
    compare_tables,
    content_hash,
    data_versions,
    read_snapshot,
    write_snapshot,
)
from taxiway.models.registry import open_registry
from taxiway.models.reproduce import reproduce_version
from taxiway.models.training import train_model, training_set_path, training_snapshots_path
from taxiway.spec.project import Project


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """The retail example, small, with a quick model (the snapshots do not depend on it)."""
    spec = retail_shop(tmp_path / "shop", customers=150)
    spec.write_text(spec.read_text().replace("algorithm: lightgbm", "algorithm: logistic"))
    return spec


def _tamper(spec: Path) -> None:
    """Double every order's amount: the data changes, the definitions do not."""
    path = spec.parent / "data" / "orders.parquet"
    table = pq.read_table(path)
    index = table.schema.get_field_index("amount")
    doubled = pc.multiply(table.column("amount"), 2)
    pq.write_table(table.set_column(index, table.field(index), doubled), path)


def test_two_trainings_are_two_delta_versions_the_registry_names(shop: Path) -> None:
    project = Project.load(shop)
    first = train_model(project)
    second = train_model(project, rebuild=True)
    table = training_snapshots_path(project)
    assert data_versions(table) == [0, 1]
    one, two = (Snapshot.from_dict(r.version.training["snapshot"]) for r in (first, second))
    assert (one.path, one.version) == (str(table.resolve()), 0)
    assert (two.path, two.version) == (str(table.resolve()), 1)
    assert one.content_hash == two.content_hash  # same inputs, same set
    assert first.as_dict()["training_set"]["snapshot"]["version"] == 0
    # the registry keeps it: read back through a fresh registry handle
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        recorded = registry.get(project.spec.name, 1).training["snapshot"]
    finally:
        registry.close()
    assert recorded == one.as_dict()
    # what the model trained on is the Delta version, read by pyarrow and by DuckDB
    parquet = pq.read_table(training_set_path(project))
    assert read_snapshot(one).equals(parquet)
    con = duckdb.connect()
    try:
        con.register("version_0", DeltaTable(str(table), version=0).to_pyarrow_dataset())
        rows = con.execute("SELECT count(*) FROM version_0").fetchone()
    finally:
        con.close()
    assert rows == (parquet.num_rows,)
    # a reused training set records the version it was written as, not a new one
    third = train_model(project)
    assert third.reused_training_set
    assert third.version.training["snapshot"]["version"] == 1
    assert data_versions(table) == [0, 1]


def test_reproduce_says_identical_then_names_what_differs_after_tampering(shop: Path) -> None:
    project = Project.load(shop)
    train_model(project)
    runner = CliRunner()
    same = runner.invoke(app, ["train", "-f", str(shop), "--reproduce", "1"])
    assert same.exit_code == 0, same.output
    assert "identical bit for bit" in same.output
    assert "version 0 of" in same.output

    _tamper(shop)
    changed = runner.invoke(app, ["train", "-f", str(shop), "--reproduce", "1", "--json"])
    assert changed.exit_code == 1, changed.output
    document = json.loads(changed.stdout)
    assert document["identical"] is False
    comparison = document["comparison"]
    spend = [c for c in comparison["columns_differing"] if "spend" in c]
    assert spend, comparison
    assert "customer_orders__order_count_30d" not in comparison["columns_differing"]
    assert comparison["rows"][0] == comparison["rows"][1]
    assert any(line.startswith("source orders:") for line in document["inputs_changed"])
    assert any("values differ" in line for line in comparison["differences"])
    # nothing was registered and the kept training set is the recorded one
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        assert [v.version for v in registry.list(project.spec.name)] == [1]
    finally:
        registry.close()
    assert data_versions(training_snapshots_path(project)) == [0]


def test_retention_keeps_what_registered_versions_need_and_removes_the_rest(shop: Path) -> None:
    shop.write_text(
        shop.read_text().replace(
            "  validation: 0.2", "  validation: 0.2\n  snapshots: {keep_last: 1}"
        )
    )
    project = Project.load(shop)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        train_model(project, registry=registry)  # v1: delta 0, stays a candidate
        train_model(project, registry=registry, rebuild=True)  # v2: delta 1
        registry.set_stage(project.spec.name, 2, "archived", by="test")
        third = train_model(project, registry=registry, rebuild=True)  # v3: delta 2
        snapshots = {
            v.version: Snapshot.from_dict(v.training["snapshot"])
            for v in registry.list(project.spec.name)
        }
    finally:
        registry.close()
    assert third.snapshots_removed == [1]
    assert read_snapshot(snapshots[1]).num_rows == snapshots[1].rows  # needed by candidate v1
    assert read_snapshot(snapshots[3]).num_rows == snapshots[3].rows  # the newest
    with pytest.raises(FeatureError, match="vacuumed"):
        read_snapshot(snapshots[2])  # archived v2 needs nothing
    assert reproduce_version(Project.load(shop), 1).identical


def test_without_keep_last_nothing_is_removed(tmp_path: Path) -> None:
    from taxiway.features.snapshots import apply_retention

    path = tmp_path / "delta"
    for value in range(3):
        write_snapshot(path, pa.table({"k": [value]}))
    done = apply_retention(path, keep_last=None, needed=[])
    assert (done.gone, done.files_removed) == ([], 0)
    assert [read_snapshot(Snapshot(str(path), v, 1, "")).num_rows for v in range(3)] == [1, 1, 1]
    done = apply_retention(path, keep_last=1, needed=[0])
    assert (done.kept, done.gone, done.files_removed) == ([0, 2], [1], 1)


# --------------------------------------------------------------------------- comparing

rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.one_of(st.none(), st.floats(allow_nan=False, width=64)),
        st.one_of(st.none(), st.text(max_size=3)),
    ),
    max_size=30,
)


def _table(rows: list[tuple[int, float | None, str | None]]) -> pa.Table:
    keys, values, labels = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table(
        {
            "k": pa.array(keys, pa.int64()),
            "x": pa.array(values, pa.float64()),
            "s": pa.array(labels, pa.string()),
        }
    )


@settings(max_examples=20, deadline=None)
@given(rows_strategy, st.randoms(use_true_random=False))
def test_the_content_hash_ignores_row_order_and_sees_any_changed_value(
    rows: list[tuple[int, float | None, str | None]], random: object
) -> None:
    shuffled = list(rows)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert content_hash(_table(rows)) == content_hash(_table(shuffled))
    if rows:
        k, x, s = rows[0]
        changed = [(k, 2.0 if x == 1.0 else 1.0, s), *rows[1:]]
        assert content_hash(_table(rows)) != content_hash(_table(changed))
        diff = compare_tables(_table(rows), _table(changed), keys=["k"])
        assert not diff.identical
        assert diff.columns_differing == {"x": 1}
        assert (diff.rows_only_recorded, diff.rows_only_rebuilt) == (1, 1)


def test_compare_names_schema_row_count_and_order_differences() -> None:
    base = _table([(1, 1.0, "a"), (2, 2.0, "b")])
    assert compare_tables(base, base, keys=["k"]).describe() == []
    reordered = compare_tables(base, base.take([1, 0]), keys=["k"])
    assert reordered.describe() == ["the same rows, in another order"]
    fewer = compare_tables(base, base.slice(0, 1), keys=["k"])
    assert fewer.describe()[0] == "rows: 2 recorded, 1 rebuilt"
    assert fewer.rows_only_recorded == 1
    reshaped = base.drop_columns(["s"]).append_column("y", pa.array([1, 2]))
    retyped = compare_tables(base, reshaped.set_column(1, "x", pa.array(["1", "2"])), keys=["k"])
    assert retyped.columns_only_recorded == ["s"]
    assert retyped.columns_only_rebuilt == ["y"]
    assert retyped.types_differing == {"x": ("double", "string")}
