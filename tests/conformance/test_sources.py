"""One suite every source kind passes: same rows, same schema, streamed, scannable, clear errors.

Adding a source kind means adding a factory to ``KINDS``; nothing else changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from taxiway.data.sources import Source, open_source
from taxiway.errors import SourceError
from taxiway.spec.models import DuckDBSource, FileSource, PostgresSource

ROWS = 2_500
AMOUNTS = [round(i * 0.25, 2) for i in range(ROWS)]
TABLE = pa.table(
    {
        "order_id": pa.array(range(ROWS), pa.int64()),
        "customer_id": pa.array([i % 97 for i in range(ROWS)], pa.int64()),
        "amount": pa.array(AMOUNTS, pa.float64()),
        "status": pa.array(
            ["placed", "shipped", None, "returned"] * (ROWS // 4) + ["placed"] * (ROWS % 4)
        ),
        "ordered_at": pa.array(
            [datetime(2025, 1, 1, i % 24, i % 60) for i in range(ROWS)], pa.timestamp("us")
        ),
    }
)

Factory = Callable[[Path, pytest.FixtureRequest], Source]


def _parquet(folder: Path, _: pytest.FixtureRequest) -> Source:
    pq.write_table(TABLE.slice(0, 1000), folder / "part-0.parquet")
    pq.write_table(TABLE.slice(1000), folder / "part-1.parquet")
    return open_source("orders", FileSource(kind="file", path=str(folder / "part-*.parquet")))


def _csv(folder: Path, _: pytest.FixtureRequest) -> Source:
    pacsv.write_csv(TABLE, folder / "orders.csv")
    return open_source("orders", FileSource(kind="file", path=str(folder / "orders.csv")))


def _jsonl(folder: Path, _: pytest.FixtureRequest) -> Source:
    with (folder / "orders.jsonl").open("w") as out:
        for row in TABLE.to_pylist():
            row["ordered_at"] = row["ordered_at"].isoformat()
            out.write(json.dumps(row) + "\n")
    return open_source("orders", FileSource(kind="file", path=str(folder / "orders.jsonl")))


def _duckdb_table(folder: Path, _: pytest.FixtureRequest) -> Source:
    con = duckdb.connect(str(folder / "shop.db"))
    con.register("frame", TABLE)
    con.execute("CREATE SCHEMA sales; CREATE TABLE sales.orders AS SELECT * FROM frame")
    con.close()
    return open_source(
        "orders", DuckDBSource(kind="duckdb", path=str(folder / "shop.db"), table="sales.orders")
    )


def _duckdb_query(folder: Path, _: pytest.FixtureRequest) -> Source:
    con = duckdb.connect(str(folder / "shop.db"))
    con.register("frame", TABLE)
    con.execute("CREATE TABLE raw AS SELECT * FROM frame")
    con.close()
    spec = DuckDBSource(kind="duckdb", path=str(folder / "shop.db"), query="SELECT * FROM raw")
    return open_source("orders", spec)


def _postgres(folder: Path, request: pytest.FixtureRequest) -> Source:
    import psycopg

    url: str = request.getfixturevalue("postgres_url")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS conformance_orders")
        con.execute(
            "CREATE TABLE conformance_orders (order_id bigint, customer_id bigint, "
            "amount double precision, status text, ordered_at timestamp)"
        )
        with con.cursor().copy(
            "COPY conformance_orders (order_id, customer_id, amount, status, ordered_at) FROM STDIN"
        ) as copy:
            for row in TABLE.to_pylist():
                copy.write_row(tuple(row.values()))
    monkeypatch.setenv("TW_CONFORMANCE_URL", url)
    spec = PostgresSource.model_validate(
        {
            "kind": "postgres",
            "url": "${TW_CONFORMANCE_URL}",
            "table": "conformance_orders",
            "batch_rows": 700,
        }
    )
    return open_source("orders", spec)


KINDS: dict[str, Factory] = {
    "parquet-glob": _parquet,
    "csv": _csv,
    "jsonl": _jsonl,
    "duckdb-table": _duckdb_table,
    "duckdb-query": _duckdb_query,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(KINDS))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    return KINDS[request.param](tmp_path, request)


def _sorted(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: row["order_id"])


def test_yields_every_row_unchanged(source: Source) -> None:
    table = source.batches().read_all()
    assert table.num_rows == ROWS
    assert _sorted(table.select(TABLE.column_names)) == _sorted(TABLE)


def test_schema_names_the_columns_without_reading_rows(source: Source) -> None:
    schema = source.schema()
    assert schema.names == TABLE.column_names
    assert pa.types.is_integer(schema.field("order_id").type)
    assert pa.types.is_timestamp(schema.field("ordered_at").type)


def test_streams_in_batches_and_selects_columns(source: Source) -> None:
    reader = source.batches(columns=["order_id", "amount"], batch_rows=500)
    batches = list(reader)
    assert len(batches) >= 2, "a source streams; it never hands back one giant batch"
    assert all(batch.schema.names == ["order_id", "amount"] for batch in batches)
    assert sum(batch.num_rows for batch in batches) == ROWS


def test_registers_a_view_the_engine_can_scan_twice(source: Source, tmp_path: Path) -> None:
    con = duckdb.connect()
    source.register(con, "orders_view", tmp_path / "staging")
    first = con.execute("SELECT count(*), sum(amount) FROM orders_view").fetchone()
    second = con.execute("SELECT count(*) FROM orders_view WHERE status IS NULL").fetchone()
    assert first == (ROWS, pytest.approx(sum(AMOUNTS)))
    assert second == (TABLE.column("status").null_count,)


def test_describe_names_the_location_and_no_secret(source: Source) -> None:
    text = source.describe()
    assert text
    assert "password" not in text.lower()


def test_missing_file_is_a_source_error_with_a_fix(tmp_path: Path) -> None:
    for spec in (
        FileSource(kind="file", path=str(tmp_path / "none-*.parquet")),
        DuckDBSource(kind="duckdb", path=str(tmp_path / "none.db"), table="t"),
    ):
        with pytest.raises(SourceError) as caught:
            open_source("orders", spec).batches()
        assert caught.value.fix


def test_unreadable_parquet_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(SourceError, match="cannot read"):
        open_source(
            "orders", FileSource(kind="file", path=str(tmp_path / "broken.parquet"))
        ).schema()


def test_unknown_table_in_duckdb_is_a_source_error(tmp_path: Path) -> None:
    duckdb.connect(str(tmp_path / "x.db")).close()
    reader = open_source(
        "orders", DuckDBSource(kind="duckdb", path=str(tmp_path / "x.db"), table="nope")
    )
    with pytest.raises(SourceError, match="nope"):
        reader.schema()
