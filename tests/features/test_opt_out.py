"""governance.opt_out in training: the opted-out units' rows are left out and counted."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.conftest import retail_shop

from taxiway.errors import FeatureError, SpecError
from taxiway.features.training_set import (
    build_training_set,
    cached_training_set,
    current_fingerprint,
)
from taxiway.spec import Project

OPTED_OUT = ["100003", "100017", "100042"]


def _with_opt_out(spec: Path, listed: list[str], *, column: str = "customer_id") -> Path:
    text = spec.read_text()
    text = text.replace(
        "\nsources:\n",
        "\nsources:\n  opted_out:\n    kind: file\n    path: opted_out.csv\n",
        1,
    )
    text = text.replace("\ngovernance:\n", "\ngovernance:\n  opt_out: {source: opted_out}\n", 1)
    (spec.parent / "opted_out.csv").write_text("\n".join([column, *listed]) + "\n")
    out = spec.parent / "with-opt-out.yaml"
    out.write_text(text)
    return out


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retail_shop(tmp_path_factory.mktemp("opt-out-shop"), customers=120)


def test_opted_out_units_rows_are_left_out_and_counted(shop: Path, tmp_path: Path) -> None:
    full = build_training_set(Project.load(shop), tmp_path / "full.parquet")
    everyone = pq.read_table(tmp_path / "full.parquet").column("customer_id").to_pylist()
    theirs = sum(str(c) in OPTED_OUT for c in everyone)
    assert theirs > 0

    spec = _with_opt_out(shop, OPTED_OUT)
    manifest = build_training_set(Project.load(spec), tmp_path / "kept.parquet")
    kept = pq.read_table(tmp_path / "kept.parquet").column("customer_id").to_pylist()
    assert not {str(c) for c in kept} & set(OPTED_OUT)
    assert manifest.dropped["opt_out"] >= theirs  # spine rows, some also without a label
    assert manifest.rows == full.rows - theirs
    assert "opt_out" not in full.dropped


def test_a_changed_list_changes_the_fingerprint_and_the_set_is_rebuilt(
    shop: Path, tmp_path: Path
) -> None:
    spec = _with_opt_out(shop, OPTED_OUT[:1])
    project = Project.load(spec)
    out = tmp_path / "set.parquet"
    first, reused = cached_training_set(project, out)
    assert not reused
    before = current_fingerprint(project)
    (spec.parent / "opted_out.csv").write_text("customer_id\n" + "\n".join(OPTED_OUT) + "\n")
    assert current_fingerprint(project) != before
    second, reused = cached_training_set(project, out)
    assert not reused
    assert second.dropped["opt_out"] > first.dropped["opt_out"]


def test_a_list_without_the_key_column_names_it(shop: Path, tmp_path: Path) -> None:
    spec = _with_opt_out(shop, OPTED_OUT, column="customer")
    with pytest.raises(FeatureError, match="no column customer_id") as raised:
        build_training_set(Project.load(spec), tmp_path / "set.parquet")
    assert "key column" in (raised.value.fix or "")


def test_an_undeclared_opt_out_source_is_a_spec_error_with_its_line(shop: Path) -> None:
    text = shop.read_text().replace(
        "\ngovernance:\n", "\ngovernance:\n  opt_out: {source: optedout}\n", 1
    )
    spec = shop.parent / "bad-opt-out.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError) as raised:
        Project.load(spec)
    message = str(raised.value)
    assert "unknown source `optedout`" in message
    assert "bad-opt-out.yaml:" in message


def test_spark_leaves_out_the_same_rows_as_duckdb(shop: Path, tmp_path: Path) -> None:
    from tests.conftest import require
    from tests.engines.conftest import require_java

    require("pyspark", reason="the Spark engine's tests need the spark extra")
    require("sqlglot", reason="the Spark engine's tests need the spark extra")
    require_java()
    spec = _with_opt_out(shop, OPTED_OUT)
    on_duckdb = build_training_set(Project.load(spec), tmp_path / "duckdb.parquet")
    on_spark = build_training_set(
        Project.load(spec), tmp_path / "spark.parquet", engine="spark", master="local[2]"
    )
    assert on_spark.dropped["opt_out"] == on_duckdb.dropped["opt_out"] > 0
    assert on_spark.rows == on_duckdb.rows
    kept = pq.read_table(tmp_path / "spark.parquet").column("customer_id").to_pylist()
    assert not {str(c) for c in kept} & set(OPTED_OUT)
