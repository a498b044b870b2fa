"""Source connectors: each reads production data where it lives and yields Arrow."""

from __future__ import annotations

from taxiway.data.sources.base import DEFAULT_BATCH_ROWS, Source, SourceSpec
from taxiway.data.sources.delta import DeltaReader
from taxiway.data.sources.duckdb import DuckDBReader
from taxiway.data.sources.file import FileReader
from taxiway.data.sources.nats import NatsReader
from taxiway.errors import SourceError
from taxiway.spec.models import (
    DeltaSource,
    DuckDBSource,
    FileSource,
    NatsSource,
    PostgresSource,
)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DeltaReader",
    "DuckDBReader",
    "FileReader",
    "NatsReader",
    "Source",
    "SourceSpec",
    "open_source",
]


def open_source(name: str, spec: SourceSpec) -> Source:
    """The reader for source ``name`` declared as ``spec``.

    >>> from taxiway.spec.models import FileSource
    >>> open_source("orders", FileSource(kind="file", path="/data/orders.parquet")).describe()
    'file /data/orders.parquet'
    """
    if isinstance(spec, FileSource):
        return FileReader(name, spec)
    if isinstance(spec, DuckDBSource):
        return DuckDBReader(name, spec)
    if isinstance(spec, PostgresSource):
        try:
            # optional extra: psycopg and the ADBC driver are only needed for postgres sources
            from taxiway.data.sources.postgres import PostgresReader
        except ImportError as error:
            if (error.name or "").startswith("taxiway"):
                raise
            raise SourceError(
                f"source `{name}` is a postgres source but its driver is missing ({error.name})",
                fix="pip install 'taxiway[postgres]'",
            ) from None
        return PostgresReader(name, spec)
    if isinstance(spec, NatsSource):
        # the history the stream consumer writes (Parquet files): no nats-py needed to read it
        return NatsReader(name, spec)
    if isinstance(spec, DeltaSource):
        return DeltaReader(name, spec)
    raise SourceError(f"source `{name}`: unsupported kind")  # pragma: no cover - union is closed
