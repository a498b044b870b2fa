"""Reading the prediction log: counting its records, and a DuckDB view over its files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from taxiway.engines.duckdb import quote_identifier, quote_literal
from taxiway.errors import ServingError
from taxiway.serving.log_files import LOG_GLOB, log_files

if TYPE_CHECKING:
    import duckdb

__all__ = ["count_records", "read_predictions"]

_ALL_NULL = r'\{("(?:[^"\\]|\\.)*":null,?)*\}'  # {"a":null,"b":null}: a torn line in DuckDB


def count_records(folder: Path) -> int:
    """How many complete records the files in ``folder`` hold (a torn line is not one)."""
    count = 0
    for path in log_files(folder):
        for line in path.read_bytes().splitlines():
            try:
                count += isinstance(orjson.loads(line), dict)
            except orjson.JSONDecodeError:
                continue
    return count


def read_predictions(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    view: str = "predictions",
    *,
    columns: Mapping[str, str] | None = None,
) -> None:
    """Create (or replace) the DuckDB view ``view`` over every log file in ``folder``.

    The view reads the files each time it is queried, so new records and files are included,
    and skips torn lines (and records whose every value is null). Without
    ``columns`` (``{"request_id": "VARCHAR", ...}``), columns and their types are detected
    from every record at each query, which reads the files twice; with it, once. Raises
    :class:`ServingError` if nothing was logged yet.
    """
    folder = Path(folder)
    if not log_files(folder):
        raise ServingError(
            f"no prediction has been logged in {folder}",
            fix="serve some predictions first, or check serving.log.path",
        )
    options = ["format = 'newline_delimited'", "ignore_errors = true"]
    if columns:
        pairs = ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in columns.items())
        options.append(f"columns = {{{pairs}}}")
    else:
        options += ["union_by_name = true", "sample_size = -1", "maximum_sample_files = -1"]
    source = f"read_json({quote_literal(str(folder / LOG_GLOB))}, {', '.join(options)})"
    # Under ignore_errors a torn line is a row whose every column is NULL. The test matches the
    # row's JSON rather than naming columns, so the view stays valid as columns come and go.
    con.execute(
        f"CREATE OR REPLACE VIEW {quote_identifier(view)} AS SELECT * FROM {source} AS record "  # nosec B608
        f"WHERE NOT regexp_full_match(to_json(record)::VARCHAR, {quote_literal(_ALL_NULL)})"
    )
