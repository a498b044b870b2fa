"""The source protocol: every source yields Arrow and can be scanned by the offline engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from taxiway.spec.models import (
    DeltaSource,
    DuckDBSource,
    FileSource,
    NatsSource,
    PostgresSource,
)

__all__ = ["DEFAULT_BATCH_ROWS", "Source", "SourceSpec"]

SourceSpec = FileSource | DuckDBSource | PostgresSource | NatsSource | DeltaSource
DEFAULT_BATCH_ROWS = 100_000


@runtime_checkable
class Source(Protocol):
    """A readable source of facts.

    ``batches`` streams record batches so a table never has to fit in memory; ``register``
    makes the source scannable, repeatedly, by a DuckDB connection under a view name (remote
    sources are staged to Parquet under ``staging_dir`` first).
    """

    name: str

    @property
    def spec(self) -> SourceSpec:
        """The source's declaration in the spec."""
        ...

    def describe(self) -> str:
        """Where the data lives, for messages (no secrets)."""
        ...

    def schema(self) -> pa.Schema:
        """The Arrow schema of the rows, read without scanning the data."""
        ...

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        """Stream the rows (optionally only ``columns``) as Arrow record batches."""
        ...

    def register(self, con: duckdb.DuckDBPyConnection, view: str, staging_dir: Path) -> None:
        """Make the rows scannable in ``con`` as ``view``."""
        ...
