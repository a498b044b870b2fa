"""Offline compute engines. DuckDB in-process is the embedded default; Spark (``engine: spark``)
lives in :mod:`taxiway.engines.spark`, behind the ``spark`` extra."""

from taxiway.engines.duckdb import connect, quote_identifier, quote_literal
from taxiway.engines.sql import DuckDBEngine, Engine, EngineError, SqlEngine, as_engine

__all__ = [
    "DuckDBEngine",
    "Engine",
    "EngineError",
    "SqlEngine",
    "as_engine",
    "connect",
    "quote_identifier",
    "quote_literal",
]
