"""The embedded DuckDB engine: connections configured for out-of-core work and no downloads.

>>> con = connect()
>>> con.sql("SELECT 41 + 1").fetchall()
[(42,)]
>>> quote_literal("it's")
"'it''s'"
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["connect", "fetch_one", "quote_identifier", "quote_literal"]


def connect(
    database: str | Path = ":memory:",
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open DuckDB with extension downloads off (nothing is fetched at run time).

    ``memory_limit`` (e.g. ``"4GB"``) and ``temp_directory`` let large scans spill to disk
    instead of running out of memory; ``TAXIWAY_DUCKDB_MEMORY`` sets the default limit.
    """
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    limit = memory_limit or os.environ.get("TAXIWAY_DUCKDB_MEMORY")
    if limit:
        config["memory_limit"] = limit
    if threads:
        config["threads"] = threads
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    con = duckdb.connect(str(database), read_only=read_only, config=config)
    # every time is UTC, whatever the machine's zone: time-zone-aware columns cast to UTC
    with contextlib.suppress(duckdb.Error):  # a build without ICU has no zones to set
        con.execute("LOAD icu; SET TimeZone = 'UTC'")
    # taxiway shows its own progress; DuckDB's bar would print into command output
    con.execute("SET enable_progress_bar = false")
    return con


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...] | None:
    """The first row of ``sql``, draining the result so the connection is free again.

    >>> fetch_one(connect(), "SELECT 1, 2")
    (1, 2)
    """
    rows = con.execute(sql).fetchall()
    return tuple(rows[0]) if rows else None


def quote_identifier(name: str) -> str:
    """Quote ``name`` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote ``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"
