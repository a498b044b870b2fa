"""`kind: delta` on DuckDB: one version per run (pinned or the newest), partition columns kept,
the version in the fingerprint, and a table its files alone would misread refused."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from tests.conftest import require

from taxiway.data.sources import open_source
from taxiway.data.stage import fingerprint
from taxiway.engines.duckdb import connect
from taxiway.errors import SourceError
from taxiway.spec.models import DeltaSource

deltalake = require("deltalake", reason="Delta sources need the stream extra")


def table(folder: Path, **options: object) -> str:
    """Two commits: version 0 holds k 1 and 2, version 1 adds k 3."""
    path = str(folder / "t")
    deltalake.write_deltalake(path, pa.table({"k": [1, 2], "day": ["a", "b"]}), **options)
    deltalake.write_deltalake(path, pa.table({"k": [3], "day": ["a"]}), mode="append", **options)
    return path


def rows(path: str, version: int | None = None) -> tuple[list[tuple[object, ...]], str, int | None]:
    reader = open_source("t", DeltaSource(kind="delta", path=path, version=version))
    con = connect()
    reader.register(con, "v", Path(path))
    found = con.execute("SELECT k, day FROM v ORDER BY k").fetchall()
    return found, fingerprint(con, reader, "v"), getattr(reader, "version", None)


def test_the_newest_version_or_the_pinned_one_is_read(tmp_path: Path) -> None:
    path = table(tmp_path)
    newest, newest_print, newest_version = rows(path)
    pinned, pinned_print, pinned_version = rows(path, version=0)
    assert newest == [(1, "a"), (2, "b"), (3, "a")]
    assert pinned == [(1, "a"), (2, "b")]
    assert (newest_version, pinned_version) == (1, 0)
    assert newest_print != pinned_print  # the version read is part of the fingerprint


def test_partition_columns_are_read_with_their_values(tmp_path: Path) -> None:
    path = table(tmp_path, partition_by=["day"])
    assert rows(path)[0] == [(1, "a"), (2, "b"), (3, "a")]


def test_a_missing_table_or_version_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no Delta table") as raised:
        rows(str(tmp_path / "nothing"))
    assert "_delta_log" in (raised.value.fix or "")
    with pytest.raises(SourceError, match="version 7"):
        rows(table(tmp_path), version=7)


def test_a_column_mapped_table_is_refused_not_read_as_nulls(tmp_path: Path) -> None:
    path = str(tmp_path / "mapped")
    deltalake.write_deltalake(
        path, pa.table({"k": [1, 2]}), configuration={"delta.columnMapping.mode": "name"}
    )
    with pytest.raises(SourceError, match="column mapping"):
        rows(path)
