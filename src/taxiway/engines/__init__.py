"""Offline compute engines. DuckDB in-process is the embedded default."""

from taxiway.engines.duckdb import connect, quote_identifier, quote_literal

__all__ = ["connect", "quote_identifier", "quote_literal"]
