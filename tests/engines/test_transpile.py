"""DuckDB SQL to Spark SQL: SQLGlot's mapping plus our two rewrites, and the constructs the
plan must never send to Spark refused by name (no Spark needed: these check the text)."""

from __future__ import annotations

import pytest
from tests.conftest import require

require("sqlglot", reason="transpiling to Spark needs the spark extra")

from taxiway.engines.transpile import (  # noqa: E402
    TranspileError,
    duckdb_type,
    spark_type,
    to_spark,
)


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        ("SELECT * FROM s ASOF JOIN e ON s.k = e.k AND s.t >= e.t", "ASOF join"),
        ("SELECT 1 AS a UNION ALL BY NAME SELECT 2 AS a", "BY NAME"),
        ("SELECT arg_max(a, create_sort_key(b, 'ASC')) FROM t", "arg_max"),
        ("SELECT epoch_us(t) FROM x", "epoch_us"),
        ("SELECT unnest(range(0, 10, 3)) AS n", "range"),
    ],
)
def test_constructs_without_a_spark_form_are_refused_by_name(sql: str, construct: str) -> None:
    with pytest.raises(TranspileError, match=construct) as raised:
        to_spark(sql)
    assert raised.value.fix is not None


def test_a_distinct_window_count_becomes_the_size_of_the_windows_set() -> None:
    sql = to_spark("SELECT count(DISTINCT v) OVER (PARTITION BY k ORDER BY t) AS n FROM x")
    assert "COUNT(DISTINCT" not in sql.upper()
    assert "CAST(SIZE(COLLECT_SET(v) OVER (PARTITION BY k ORDER BY t" in sql


def test_the_materialized_hint_is_dropped_and_qualify_becomes_a_filter() -> None:
    sql = to_spark(
        "WITH j AS MATERIALIZED (SELECT k, t FROM x) SELECT * FROM j "
        "QUALIFY row_number() OVER (PARTITION BY k ORDER BY t) = 1"
    )
    assert "MATERIALIZED" not in sql.upper()
    assert "QUALIFY" not in sql.upper()


def test_duckdb_orders_nulls_last_and_spark_is_told_so() -> None:
    # Spark's default ascending order puts nulls first: the tie rules depend on this
    assert "ORDER BY t NULLS LAST" in to_spark("SELECT row_number() OVER (ORDER BY t) FROM x")


def test_types_round_trip_between_the_dialects() -> None:
    for name in ("BIGINT", "DOUBLE", "TIMESTAMP", "BOOLEAN", "DATE", "DECIMAL(18,3)"):
        assert duckdb_type(spark_type(name)).replace(" ", "") == name
    assert duckdb_type("string") in ("TEXT", "VARCHAR")
