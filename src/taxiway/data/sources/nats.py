"""A NATS JetStream source read offline: the Parquet history its stream consumer appended.

``taxiway features stream`` writes each applied batch of a ``kind: nats`` source to
``<history>/<first seq>-<last seq>.parquet`` (:mod:`taxiway.features.stream`), so training
reads exactly the events the online tiles were given, through the file reader.

>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> pq.write_table(pa.table({"id": [1, 2]}), folder / "00000000000000000001-2.parquet")
>>> from taxiway.spec.models import NatsSource
>>> spec = NatsSource(kind="nats", url="nats://127.0.0.1:4222", subject="shop.orders",
...                   stream="ORDERS", durable="taxiway", timestamp="ts", history=str(folder))
>>> NatsReader("orders", spec).batches().read_all().num_rows
2
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from taxiway.data.sources.base import DEFAULT_BATCH_ROWS
from taxiway.data.sources.file import FileReader
from taxiway.errors import SourceError
from taxiway.spec.models import FileSource, NatsSource

__all__ = ["HISTORY_GLOB", "NatsReader"]

HISTORY_GLOB = "*.parquet"


class NatsReader:
    """A :class:`~taxiway.data.sources.base.Source` over a nats source's history folder."""

    def __init__(self, name: str, spec: NatsSource) -> None:
        self.name = name
        self.spec = spec
        self._files = FileReader(
            name, FileSource(kind="file", path=str(Path(spec.history) / HISTORY_GLOB))
        )

    def describe(self) -> str:
        return f"nats {self.spec.subject} (history {self.spec.history})"

    def _check(self) -> None:
        folder = Path(self.spec.history)
        if not any(folder.glob(HISTORY_GLOB)):
            raise SourceError(
                f"source `{self.name}`: no event in its history yet ({folder})",
                fix="run `taxiway features stream` to consume the stream, or check `history:`",
            )

    def schema(self) -> pa.Schema:
        self._check()
        return self._files.schema()

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        self._check()
        return self._files.batches(columns, batch_rows)

    def register(self, con: duckdb.DuckDBPyConnection, view: str, staging_dir: Path) -> None:
        self._check()
        self._files.register(con, view, staging_dir)
