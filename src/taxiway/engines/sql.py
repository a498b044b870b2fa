"""The engine seam: what the point-in-time plan needs from an engine that runs SQL.

The plan (``taxiway.features.pit``, ``spine``, ``labels``) writes each query once, in DuckDB's
dialect. An engine runs it: DuckDB as written, Spark after ``transpile.to_spark``. Where a
construct has no Spark form (an ASOF join, ``arg_max`` over a sort key, a distinct window
count), the plan itself picks a portable form when ``engine.portable`` is true.

>>> from taxiway.engines.duckdb import connect
>>> engine = DuckDBEngine(connect())
>>> engine.create_table("t", "SELECT 41 + 1 AS answer")
>>> engine.fetch_one("SELECT answer FROM t"), engine.columns("t")
((42,), {'answer': 'INTEGER'})
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from taxiway.engines.duckdb import fetch_one, quote_identifier, quote_literal
from taxiway.errors import TaxiwayError

__all__ = ["DuckDBEngine", "Engine", "EngineError", "SqlEngine", "as_engine"]

Engine = Literal["duckdb", "spark"]
"""The offline engines a spec can name (``engine:``)."""


@runtime_checkable
class SqlEngine(Protocol):
    """Runs the plan's SQL (DuckDB dialect) and keeps its tables for the next statement."""

    @property
    def portable(self) -> bool:
        """Whether the plan must avoid DuckDB-only constructs (true for every engine but DuckDB)."""
        ...

    def create_table(self, name: str, sql: str) -> None:
        """Make ``name`` hold the rows of ``sql`` (replacing any table of that name)."""
        ...

    def create_view(self, name: str, sql: str) -> None:
        """Make ``name`` a view of ``sql``: computed whenever it is read, never stored."""
        ...

    def drop_table(self, name: str) -> None:
        """Forget table ``name`` if it exists."""
        ...

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type of ``table``, the type spelled as DuckDB spells it."""
        ...

    def fetch_one(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of ``sql``."""
        ...

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Every row of ``sql`` (a few: samples) as column name -> value."""
        ...

    def batches(self, sql: str, size: int) -> Iterator[pa.RecordBatch]:
        """The rows of ``sql`` as Arrow batches of at most ``size`` rows, never all at once."""
        ...

    def write_parquet(self, sql: str, out: Path) -> int:
        """Write the rows of ``sql``, in their order, as one Parquet file; return the count."""
        ...

    def close(self) -> None:
        """Forget the tables this engine made (the session or connection stays open)."""
        ...


class DuckDBEngine:
    """The embedded engine: the plan's SQL runs exactly as written, in one connection."""

    portable = False

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def create_table(self, name: str, sql: str) -> None:
        """``CREATE OR REPLACE TEMP TABLE name AS sql``."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_identifier(name)} AS {sql}")

    def create_view(self, name: str, sql: str) -> None:
        """``CREATE OR REPLACE TEMP VIEW name AS sql``."""
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_identifier(name)} AS {sql}")

    def drop_table(self, name: str) -> None:
        """``DROP TABLE IF EXISTS name``."""
        self.con.execute(f"DROP TABLE IF EXISTS {quote_identifier(name)}")

    def columns(self, table: str) -> dict[str, str]:
        """From ``DESCRIBE``."""
        described = self.con.execute(f"DESCRIBE {quote_identifier(table)}").fetchall()
        return {str(row[0]): str(row[1]) for row in described}

    def fetch_one(self, sql: str) -> tuple[Any, ...] | None:
        """The first row, draining the result."""
        return fetch_one(self.con, sql)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Fetched whole."""
        cursor = self.con.execute(sql)
        names = [column[0] for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def batches(self, sql: str, size: int) -> Iterator[pa.RecordBatch]:
        """Streamed from the result."""
        yield from self.con.sql(sql).to_arrow_reader(size)

    def write_parquet(self, sql: str, out: Path) -> int:
        """``COPY (sql) TO out`` (zstd)."""
        written = fetch_one(
            self.con,
            f"COPY ({sql}) TO {quote_literal(str(out))} (FORMAT parquet, COMPRESSION zstd)",
        )
        return int(written[0]) if written else 0

    def close(self) -> None:
        """Nothing: temporary tables go with the connection, which its owner closes."""


def as_engine(con: duckdb.DuckDBPyConnection | SqlEngine) -> SqlEngine:
    """``con`` as an engine: a DuckDB connection is wrapped, an engine returned as it is."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return DuckDBEngine(con)
    return con


class EngineError(TaxiwayError):
    """A query failed on an engine other than DuckDB (whose own errors the plan handles)."""
