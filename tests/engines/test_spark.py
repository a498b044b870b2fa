"""The Spark engine: the spec keys that choose it, what it costs to import, and its failures
reported as what failed and what to do (not as a JVM stack trace)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taxiway.engines.sql import EngineError
from taxiway.errors import SpecError
from taxiway.spec import load_spec_text

SPEC = "name: demo\n"


def test_the_engine_is_duckdb_unless_the_spec_says_spark() -> None:
    assert load_spec_text(SPEC).engine == "duckdb"
    spec = load_spec_text(SPEC + "engine: spark\nspark: {master: 'local[4]', conf: {a.b: 2}}\n")
    assert spec.engine == "spark"
    assert spec.spark is not None
    assert (spec.spark.master, spec.spark.conf) == ("local[4]", {"a.b": 2})
    assert load_spec_text(SPEC + "spark: {}\n").spark.master == "local[2]"  # type: ignore[union-attr]


def test_an_unknown_engine_is_a_spec_error_naming_the_choices() -> None:
    with pytest.raises(SpecError, match="duckdb") as raised:
        load_spec_text(SPEC + "engine: flink\n", "taxiway.yaml")
    assert "taxiway.yaml:2" in str(raised.value)


def test_building_on_duckdb_loads_neither_pyspark_nor_sqlglot() -> None:
    code = (
        "import sys, taxiway.features.training_set, taxiway.cli.app; "
        "print(sorted(m for m in ('pyspark', 'sqlglot') if m in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "[]"


def test_a_failed_query_says_what_failed_and_what_to_do(spark: Any, tmp_path: Path) -> None:
    from taxiway.engines.spark import SparkEngine

    engine = SparkEngine(spark, tmp_path)
    with pytest.raises(EngineError) as raised:
        engine.create_table("t", "SELECT no_such_column FROM (SELECT 1 AS a)")
    message = str(raised.value)
    assert "computing t" in message
    assert "no_such_column" in message
    assert "\tat org.apache" not in message  # one line, no JVM stack
    assert raised.value.fix


def test_sql_the_plan_must_never_send_is_refused_with_its_own_fix(
    spark: Any, tmp_path: Path
) -> None:
    from taxiway.engines.spark import SparkEngine
    from taxiway.engines.transpile import TranspileError

    with pytest.raises(TranspileError, match="ASOF"):
        SparkEngine(spark, tmp_path).create_table(
            "t", "SELECT * FROM (SELECT 1 AS k) AS s ASOF JOIN (SELECT 1 AS k) AS e ON s.k >= e.k"
        )


def test_tables_hold_their_rows_and_columns_in_duckdbs_spelling(spark: Any, tmp_path: Path) -> None:
    from taxiway.engines.spark import SparkEngine

    engine = SparkEngine(spark, tmp_path)
    engine.create_table(
        "t", "SELECT 1::BIGINT AS k, 'x' AS s, TIMESTAMP '2025-01-01 00:00:00' AS t, 2.5 AS v"
    )
    assert engine.columns("t") == {
        "k": "BIGINT",
        "s": "TEXT",
        "t": "TIMESTAMP",
        "v": "DECIMAL(2, 1)",
    }
    assert engine.fetch_one("SELECT k, s FROM t") == (1, "x")
    out = tmp_path / "t.parquet"
    assert engine.write_parquet("SELECT * FROM t", out) == 1
    engine.close()
    with pytest.raises(EngineError):
        engine.fetch_one("SELECT * FROM t")


def test_progress_names_the_statement_and_counts_stages_and_tasks(
    spark: Any, tmp_path: Path
) -> None:
    from taxiway.engines.spark import SparkEngine, stage_summary

    assert stage_summary(spark.sparkContext.statusTracker()) == "stages 0/0, tasks 0/0"
    heard: list[str] = []
    engine = SparkEngine(spark, tmp_path, progress=heard.append)
    # long enough for the watcher's first look (every second): 10^7 rows, grouped
    digits = "(SELECT * FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) AS v(d))"
    rows = " CROSS JOIN ".join(f"{digits} AS t{i}" for i in range(7))
    engine.create_table(
        "slow", f"SELECT t0.d AS k, count(*) AS n FROM {rows} GROUP BY t0.d ORDER BY k"
    )
    assert not heard  # a table is computed when first read: here, by the write
    assert engine.write_parquet("SELECT * FROM slow", tmp_path / "slow.parquet") == 10
    assert heard, "nothing was reported while the write ran"
    assert all(line.startswith("writing slow.parquet: stages ") for line in heard)
    assert engine.fetch_one("SELECT sum(n) FROM slow") == (10**7,)
    engine.close()
