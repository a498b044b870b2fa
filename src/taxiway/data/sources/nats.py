"""A NATS JetStream source read offline: the Delta history its stream consumer appended.

``taxiway features stream`` appends each applied batch of a ``kind: nats`` source to the Delta
table at ``history:`` (:mod:`taxiway.data.history`), so training reads exactly the events the
online tiles were given. A reader pins the table's version on its first read, so one run reads
one version throughout, and :attr:`NatsReader.version` names it (training records it among the
model's inputs).

>>> import pyarrow as pa, tempfile, pathlib
>>> from taxiway.data.history import append_history
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> append_history(folder, pa.table({"id": [1, 2]}), app_id="orders", version=1)
0
>>> from taxiway.spec.models import NatsSource
>>> spec = NatsSource(kind="nats", url="nats://127.0.0.1:4222", subject="shop.orders",
...                   stream="ORDERS", durable="taxiway", timestamp="ts", history=str(folder))
>>> reader = NatsReader("orders", spec)
>>> reader.batches().read_all().num_rows, reader.version
(2, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from taxiway.data.history import history_files, history_version, read_history
from taxiway.data.sources.base import DEFAULT_BATCH_ROWS
from taxiway.engines.duckdb import quote_identifier, quote_literal
from taxiway.errors import SourceError
from taxiway.spec.models import NatsSource

__all__ = ["NatsReader"]


class NatsReader:
    """A :class:`~taxiway.data.sources.base.Source` over a nats source's Delta history."""

    def __init__(self, name: str, spec: NatsSource) -> None:
        self.name = name
        self.spec = spec
        self.version: int | None = None
        """The history version read (pinned on the first read; None before)."""

    def describe(self) -> str:
        return f"nats {self.spec.subject} (history {self.spec.history})"

    def _check(self) -> None:
        folder = Path(self.spec.history)
        if self.version is None:
            self.version = history_version(folder)
        if self.version is None:
            raise SourceError(
                f"source `{self.name}`: no event in its history yet ({folder})",
                fix="run `taxiway features stream` to consume the stream, or check `history:`",
            )

    def _table(self) -> pa.Table:
        self._check()
        return read_history(Path(self.spec.history), self.version)

    def schema(self) -> pa.Schema:
        return self._table().schema

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        table = self._table()
        if columns is not None:
            table = table.select(list(columns))
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_rows))

    def register(self, con: duckdb.DuckDBPyConnection, view: str, staging_dir: Path) -> None:
        # DuckDB scans the version's Parquet files where they are (no copy, no Arrow in memory)
        self._check()
        assert self.version is not None  # nosec B101
        files = history_files(Path(self.spec.history), self.version)
        listed = ", ".join(quote_literal(f) for f in files)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote_identifier(view)} AS "  # nosec B608
            f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"
        )
