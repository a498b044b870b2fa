"""A table or query in a DuckDB database file, opened read-only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from taxiway.data.sources.base import DEFAULT_BATCH_ROWS
from taxiway.engines.duckdb import connect, quote_identifier, quote_literal
from taxiway.errors import SourceError
from taxiway.spec.models import DuckDBSource

__all__ = ["DuckDBReader"]


class DuckDBReader:
    """A :class:`~taxiway.data.sources.base.Source` over a DuckDB database file."""

    def __init__(self, name: str, spec: DuckDBSource) -> None:
        self.name = name
        self.spec = spec

    def describe(self) -> str:
        what = f"table {self.spec.table}" if self.spec.table else "query"
        return f"duckdb {self.spec.path} ({what})"

    def _open(self) -> duckdb.DuckDBPyConnection:
        if not Path(self.spec.path).is_file():
            raise SourceError(
                f"source `{self.name}`: no DuckDB database at {self.spec.path}",
                fix="check `path:` in the spec (relative paths start at the spec's folder)",
            )
        try:
            return connect(self.spec.path, read_only=True)
        except duckdb.Error as error:
            raise SourceError(
                f"source `{self.name}`: cannot open {self.spec.path}: {_first_line(error)}",
                fix="check that the file is a DuckDB database and no process holds it for writing",
            ) from None

    def _relation_sql(self) -> str:
        if self.spec.table is not None:
            return ".".join(quote_identifier(p) for p in self.spec.table.split("."))
        assert self.spec.query is not None  # nosec B101
        return f"({self.spec.query})"

    def _select(self, columns: Sequence[str] | None) -> str:
        cols = ", ".join(quote_identifier(c) for c in columns) if columns else "*"
        return f"SELECT {cols} FROM {self._relation_sql()} AS source"  # nosec B608

    def _run_sql(self, con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation:
        try:
            return con.sql(sql)
        except duckdb.Error as error:
            target = f"table {self.spec.table}" if self.spec.table else "the query"
            raise SourceError(
                f"source `{self.name}`: cannot read {target} in {self.spec.path}: "
                f"{_first_line(error)}",
                fix="check `table:`/`query:` against the database (`duckdb FILE -c '.tables'`)",
            ) from None

    def schema(self) -> pa.Schema:
        con = self._open()
        try:
            empty: pa.Table = self._run_sql(con, self._select(None) + " LIMIT 0").to_arrow_table()
            return empty.schema
        finally:
            con.close()

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        con = self._open()
        reader: pa.RecordBatchReader = self._run_sql(con, self._select(columns)).to_arrow_reader(
            batch_rows
        )
        return reader

    def register(self, con: duckdb.DuckDBPyConnection, view: str, staging_dir: Path) -> None:
        self._open().close()  # clear error for a missing or unreadable file
        alias = f"src_{view}"
        attached = {
            row[0] for row in con.sql("SELECT database_name FROM duckdb_databases()").fetchall()
        }
        if alias not in attached:
            con.execute(
                f"ATTACH {quote_literal(self.spec.path)} AS {quote_identifier(alias)} (READ_ONLY)"
            )
        if self.spec.table is not None:
            parts = self.spec.table.split(".")
            target = ".".join(quote_identifier(p) for p in [alias, *parts])
            sql = f"CREATE OR REPLACE TEMP VIEW {quote_identifier(view)} AS SELECT * FROM {target}"  # nosec B608
            self._run_sql(con, sql)
            self._run_sql(con, f"SELECT * FROM {quote_identifier(view)} LIMIT 0").fetchall()  # nosec B608
            return
        # A query names tables of the attached database unqualified, and views re-bind names
        # when queried, so a query source is copied once into a temporary table.
        con.execute(f"USE {quote_identifier(alias)}")
        try:
            self._run_sql(
                con,
                f"CREATE OR REPLACE TEMP TABLE {quote_identifier(view)} AS {self._select(None)}",
            )
        finally:
            con.execute("USE memory")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
