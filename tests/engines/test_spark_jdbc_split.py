"""A PostgreSQL source read by Spark in parallel ranges of a column (JDBC partitioning): the
same rows as DuckDB's read of the table, over more than one partition, on the real server.

Split on the source's timestamp by default, or on ``partition_column`` (numeric, date,
``timestamptz``); nulls and rows at the bounds are read once. A column Spark cannot split on
is refused with the source's columns, and ``partitions:`` with no column to split on is refused
when the spec is loaded (file, line, what to write).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.engines.test_spark_sources import jdbc_jar  # noqa: F401 (the driver jar's fixture)

from taxiway.errors import SourceError, SpecError
from taxiway.spec.loader import load_spec_text

TABLE = "tw_sparkexec_split"
jdbc = pytest.mark.usefixtures("jdbc_jar")
ROWS = 1_000


@pytest.fixture
def table(postgres_url: str) -> str:
    """A table with a null in every column but the key, and times in and out of summer."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(
            f"CREATE TABLE {TABLE} (k bigint, ts timestamp, seen timestamptz, d date, "
            "amount numeric(10, 2), note text)"
        )
        con.execute(
            f"INSERT INTO {TABLE} SELECT i, "
            "timestamp '2025-01-01' + i * interval '7 hours 3 seconds', "
            "timestamptz '2025-03-01 00:00:00+00' + i * interval '1 day 1 microsecond', "
            "date '2024-12-30' + (i % 400), (i * 37 % 1000) / 7.0, 'n' || i "
            f"FROM generate_series(1, {ROWS}) AS i"
        )
        con.execute(f"INSERT INTO {TABLE} (k) VALUES (0)")  # nulls: read, in the first range
    return postgres_url


def source_spec(url: str, extra: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    user, rest = url.removeprefix("postgresql://").split("@", 1)
    monkeypatch.setenv("TW_SPLIT_PG_URL", f"postgresql://{user}:n0t-in-any-log@{rest}")
    spec = load_spec_text(
        "name: split\nsources:\n  ev:\n    kind: postgres\n    url: ${TW_SPLIT_PG_URL}\n"
        f"    table: public.{TABLE}\n    timestamp: ts\n{extra}"
    )
    return spec.sources["ev"]


def duckdb_rows(source: Any, tmp_path: Path) -> list[tuple[Any, ...]]:
    """The table as taxiway's DuckDB reader reads it (the `engine: duckdb` path)."""
    from taxiway.data.sources import open_source
    from taxiway.engines.duckdb import connect

    con = connect()
    try:
        open_source("ev", source).register(con, "ev", tmp_path / "staging")
        return sorted(
            con.execute("SELECT k, ts, seen, d, CAST(amount AS DOUBLE), note FROM ev").fetchall()
        )
    finally:
        con.close()


def spark_read(spark: Any, source: Any, tmp_path: Path) -> tuple[list[tuple[Any, ...]], int]:
    """The rows Spark reads (times as UTC epoch microseconds, to compare with DuckDB's) and the
    partitions of the read."""
    from taxiway.engines.spark import SparkEngine

    SparkEngine(spark, tmp_path).register_postgres("ev_split", "ev", source)
    frame = spark.table("ev_split")
    rows = frame.selectExpr(
        "k",
        "unix_micros(CAST(ts AS TIMESTAMP)) AS ts",
        "unix_micros(seen) AS seen",
        "d",
        "CAST(amount AS DOUBLE) AS amount",
        "note",
    ).collect()
    return sorted(tuple(row) for row in rows), frame.rdd.getNumPartitions()


def epoch_us(value: Any) -> int | None:
    """A DuckDB time (naive: UTC; aware: its instant) as epoch microseconds."""
    if value is None:
        return None
    moment: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def assert_same_rows(by_spark: list[tuple[Any, ...]], by_duckdb: list[tuple[Any, ...]]) -> None:
    assert len(by_spark) == len(by_duckdb) == ROWS + 1
    for s, d in zip(by_spark, by_duckdb, strict=True):
        k, ts, seen, day, amount, note = d
        assert s[:4] == (k, epoch_us(ts), epoch_us(seen), day), (s, d)
        assert (s[4] is None and amount is None) or math.isclose(s[4], amount, rel_tol=1e-12)
        assert s[5] == note


@jdbc
@pytest.mark.parametrize(
    ("extra", "partitions"),
    [
        ("", None),  # the source's timestamp, spark.default.parallelism ranges (local[2]: 2)
        ("    partition_column: k\n    partitions: 5\n", 5),
        ("    partition_column: seen\n    partitions: 4\n", 4),
        ("    partition_column: d\n    partitions: 3\n", 3),
        ("    partition_column: amount\n    partitions: 3\n", 3),
    ],
    ids=["timestamp", "bigint", "timestamptz", "date", "numeric"],
)
def test_a_split_read_gives_duckdb_s_rows_over_several_partitions(
    spark: Any,
    table: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: str,
    partitions: int | None,
) -> None:
    source = source_spec(table, extra, monkeypatch)
    by_spark, read_in = spark_read(spark, source, tmp_path)
    assert read_in == (partitions or spark.sparkContext.defaultParallelism)
    assert read_in > 1
    assert_same_rows(by_spark, duckdb_rows(source, tmp_path))


@jdbc
def test_partitions_1_reads_in_one(
    spark: Any,
    table: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = source_spec(table, "    partitions: 1\n", monkeypatch)
    by_spark, read_in = spark_read(spark, source, tmp_path)
    assert read_in == 1
    assert_same_rows(by_spark, duckdb_rows(source, tmp_path))


@jdbc
def test_a_column_spark_cannot_split_on_is_refused_with_the_columns(
    spark: Any,
    table: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taxiway.engines.spark import SparkEngine

    source = source_spec(table, "    partition_column: note\n", monkeypatch)
    with pytest.raises(SourceError) as raised:
        SparkEngine(spark, tmp_path).register_postgres("ev_text", "ev", source)
    assert "`partition_column: note` is string" in raised.value.message
    assert "k (bigint)" in (raised.value.fix or "")
    assert "n0t-in-any-log" not in str(raised.value)


def test_partitions_without_a_column_is_refused_at_its_line() -> None:
    text = (
        "name: split\nsources:\n  ev:\n    kind: postgres\n    url: ${TW_SPLIT_PG_URL}\n"
        "    table: public.t\n    partitions: 4\n"
    )
    with pytest.raises(SpecError) as raised:
        load_spec_text(text, "taxiway.yaml")
    shown = str(raised.value)
    assert shown.startswith("taxiway.yaml:7:5: sources.ev.partitions: `partitions: 4` needs")
    assert "`partition_column:`" in shown
    with pytest.raises(SpecError, match="must be >= 1"):
        load_spec_text(text.replace("partitions: 4", "partitions: 0"), "taxiway.yaml")
