"""CSV, Parquet and JSON-lines files (one file or a glob), read through DuckDB.

>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> pq.write_table(pa.table({"id": [1, 2, 3]}), folder / "part-1.parquet")
>>> from taxiway.spec.models import FileSource
>>> source = FileSource(kind="file", path=str(folder / "*.parquet"))
>>> FileReader("ids", source).batches().read_all().num_rows
3
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from taxiway.data.sources.base import DEFAULT_BATCH_ROWS
from taxiway.engines.duckdb import connect, quote_identifier, quote_literal
from taxiway.errors import SourceError
from taxiway.spec.models import FileSource

__all__ = ["FileReader", "infer_format"]

T = TypeVar("T")

_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def infer_format(path: str) -> str | None:
    """The format of ``path`` from its suffix (compression suffixes are looked through).

    >>> infer_format("orders.csv.gz"), infer_format("x/*.parquet"), infer_format("notes.txt")
    ('csv', 'parquet', None)
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    for suffix in reversed(suffixes):
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    return None


class FileReader:
    """A :class:`~taxiway.data.sources.base.Source` over local files."""

    def __init__(self, name: str, spec: FileSource) -> None:
        self.name = name
        self.spec = spec

    def describe(self) -> str:
        return f"file {self.spec.path}"

    def files(self) -> list[str]:
        """The files behind the path or glob, sorted; raise when there are none."""
        pattern = self.spec.path
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise SourceError(
                f"source `{self.name}`: no file at {pattern}",
                fix="check `path:` in the spec (relative paths start at the spec's folder), or "
                "create the data first (examples: `make data`)",
            )
        return matches

    def format(self) -> str:
        """``csv``, ``parquet`` or ``jsonl``, declared or inferred from the suffix."""
        if self.spec.format is not None:
            return self.spec.format
        inferred = infer_format(self.spec.path)
        if inferred is None:
            raise SourceError(
                f"source `{self.name}`: cannot tell the format of {self.spec.path}",
                fix="add `format: csv`, `format: parquet` or `format: jsonl` to the source",
            )
        return inferred

    def scan_sql(self) -> str:
        """A DuckDB table function that reads every file of the source."""
        files = "[" + ", ".join(quote_literal(f) for f in self.files()) + "]"
        fmt = self.format()
        if fmt == "parquet":
            return f"read_parquet({files}, union_by_name = true)"
        if fmt == "csv":
            return f"read_csv({files}, header = true, union_by_name = true)"
        return f"read_json({files}, format = 'newline_delimited', union_by_name = true)"

    def _select(self, columns: Sequence[str] | None) -> str:
        cols = ", ".join(quote_identifier(c) for c in columns) if columns else "*"
        return f"SELECT {cols} FROM {self.scan_sql()}"  # nosec B608

    def schema(self) -> pa.Schema:
        con = connect()
        try:
            empty: pa.Table = _run(
                self, lambda: con.sql(self._select(None) + " LIMIT 0").to_arrow_table()
            )
            return empty.schema
        finally:
            con.close()

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        con = connect()
        reader: pa.RecordBatchReader = _run(
            self, lambda: con.sql(self._select(columns)).to_arrow_reader(batch_rows)
        )
        return reader

    def register(self, con: duckdb.DuckDBPyConnection, view: str, staging_dir: Path) -> None:
        sql = f"CREATE OR REPLACE TEMP VIEW {quote_identifier(view)} AS {self._select(None)}"
        _run(self, lambda: con.execute(sql))
        _run(self, lambda: con.sql(f"SELECT * FROM {quote_identifier(view)} LIMIT 0").fetchall())  # nosec B608


def _run(reader: FileReader, action: Callable[[], T]) -> T:
    try:
        return action()
    except duckdb.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SourceError(
            f"source `{reader.name}`: cannot read {reader.spec.path}: {first}",
            fix=f"check that the file is valid {reader.format()} (or set `format:` in the spec)",
        ) from None
