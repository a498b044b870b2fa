"""A Delta Lake table, read by delta-rs at one version: the spec's ``version:`` or the newest.

A reader pins the version on its first read, so one run reads one version throughout (a commit
made meanwhile waits for the next run); :attr:`DeltaReader.version` names it and training
records it among the model's inputs. ``engine: spark`` reads the same version's files
(:mod:`taxiway.engines.spark_sources`); a table whose files alone do not hold its rows
(deletion vectors, column mapping, type widening) is refused on either engine.

>>> import pyarrow as pa, tempfile
>>> from deltalake import write_deltalake
>>> folder = tempfile.mkdtemp()
>>> write_deltalake(folder, pa.table({"id": [1, 2]}))
>>> write_deltalake(folder, pa.table({"id": [3]}), mode="append")
>>> from taxiway.spec.models import DeltaSource
>>> reader = DeltaReader("ids", DeltaSource(kind="delta", path=folder, version=0))
>>> reader.batches().read_all().num_rows, reader.version
(2, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from taxiway.data.sources.base import DEFAULT_BATCH_ROWS
from taxiway.engines.duckdb import quote_identifier
from taxiway.engines.spark_sources import refuse_unreadable
from taxiway.errors import SourceError
from taxiway.spec.models import DeltaSource

__all__ = ["DeltaReader"]


class DeltaReader:
    """A :class:`~taxiway.data.sources.base.Source` over one version of a Delta table."""

    def __init__(self, name: str, spec: DeltaSource) -> None:
        self.name = name
        self.spec = spec
        self.version: int | None = None
        """The table version read (pinned on the first read; None before)."""

    def describe(self) -> str:
        pinned = f" version {self.spec.version}" if self.spec.version is not None else ""
        return f"delta {self.spec.path}{pinned}"

    def _table(self) -> Any:
        """The delta-rs table at the pinned version."""
        try:
            from deltalake import DeltaTable
        except ImportError:
            raise SourceError(
                f"source `{self.name}` is a Delta table and deltalake is not installed",
                fix="pip install 'taxiway[stream]'",
            ) from None
        wanted = self.version if self.version is not None else self.spec.version
        try:
            table = DeltaTable(self.spec.path, version=wanted)
        except Exception as error:  # delta-rs: TableNotFoundError, DeltaError, ...
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SourceError(
                f"source `{self.name}`: no Delta table at {self.spec.path} "
                f"(version {wanted if wanted is not None else 'newest'}): {first}",
                fix="check `path:` (the folder holding _delta_log) and `version:`",
            ) from None
        # a table whose files alone do not hold its rows is refused, not misread
        refuse_unreadable(self.name, self.spec.path, table)
        self.version = int(table.version())
        return table

    def _dataset(self) -> Any:
        try:
            return self._table().to_pyarrow_dataset()
        except SourceError:
            raise
        except Exception as error:  # a protocol feature delta-rs cannot read
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SourceError(
                f"source `{self.name}`: delta-rs cannot read {self.spec.path}: {first}",
                fix="rewrite the table without the feature named, or upgrade deltalake",
            ) from None

    def schema(self) -> pa.Schema:
        schema: pa.Schema = self._dataset().schema
        return schema

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        scanner = self._dataset().scanner(
            columns=list(columns) if columns is not None else None, batch_size=batch_rows
        )
        reader: pa.RecordBatchReader = scanner.to_reader()
        return reader

    def register(self, con: duckdb.DuckDBPyConnection, view: str, staging_dir: Path) -> None:
        # DuckDB scans the version's files through the Arrow dataset (no copy in memory)
        del staging_dir
        arrow = f"{view}__arrow"
        con.register(arrow, self._dataset())
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote_identifier(view)} AS "  # nosec B608
            f"SELECT * FROM {quote_identifier(arrow)}"
        )
