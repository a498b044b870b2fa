"""The offline history of stream and CDC sources: one Delta append per batch number, read back
at a pinned version, and recorded in the training manifest."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from tests.conftest import require

from taxiway.data.history import (
    HistoryWriter,
    append_history,
    applied_version,
    history_version,
    read_history,
)
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.errors import SourceError
from taxiway.spec import Project, load_spec_text

require("deltalake", reason="deltalake is the stream extra")


def test_a_batch_redone_is_not_appended_twice(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    assert append_history(folder, pa.table({"k": [1, 2]}), app_id="a", version=1) == 0
    assert append_history(folder, pa.table({"k": [1, 2]}), app_id="a", version=1) is None
    assert append_history(folder, pa.table({"k": [9]}), app_id="b", version=1) == 1  # another app
    assert append_history(folder, pa.table({"k": [3]}), app_id="a", version=5) == 2
    assert append_history(folder, pa.table({"k": [3]}), app_id="a", version=4) is None  # older
    assert (applied_version(folder, "a"), applied_version(folder, "c")) == (5, None)
    assert read_history(folder).sort_by("k").column("k").to_pylist() == [1, 2, 3, 9]
    assert read_history(folder, version=0).num_rows == 2


def test_overwrite_replaces_the_rows_whatever_was_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    append_history(folder, pa.table({"k": [1, 2]}), app_id="a", version=9)
    assert append_history(folder, pa.table({"k": [7]}), app_id="a", version=3, overwrite=True) == 1
    assert read_history(folder).column("k").to_pylist() == [7]
    assert applied_version(folder, "a") == 3


def test_new_fields_widen_the_table(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    append_history(folder, pa.table({"k": [1]}), app_id="a", version=1)
    append_history(folder, pa.table({"k": [2], "note": ["x"]}), app_id="a", version=2)
    assert read_history(folder).sort_by("k").to_pylist() == [
        {"k": 1, "note": None},
        {"k": 2, "note": "x"},
    ]


def test_a_writer_keeps_the_table_open_across_appends_and_another_writers_commits(
    tmp_path: Path,
) -> None:
    """One HistoryWriter, appends from creation on (the table kept open between them), a
    schema widened, another writer's commit in between: every row once, each version where
    it belongs, the app transaction recorded in the table."""
    folder = tmp_path / "h"
    writer = HistoryWriter(folder, "a")
    assert writer.append(pa.table({"k": [1]}), 1)  # creates the table
    assert writer.append(pa.table({"k": [2]}), 2)  # opens it, and keeps it
    assert writer.append(pa.table({"k": [3], "note": ["x"]}), 3)
    assert append_history(folder, pa.table({"k": [9]}), app_id="b", version=1) == 3
    assert writer.append(pa.table({"k": [4]}), 4)  # its open table is a commit behind
    assert not writer.append(pa.table({"k": [4]}), 4)  # redone: not appended
    assert history_version(folder) == 4
    assert (applied_version(folder, "a"), applied_version(folder, "b")) == (4, 1)
    assert read_history(folder).sort_by("k").column("k").to_pylist() == [1, 2, 3, 4, 9]
    assert read_history(folder, version=3).num_rows == 4
    again = HistoryWriter(folder, "a")  # a restart reads what the table records
    assert again.recorded == 4
    assert not again.append(pa.table({"k": [4]}), 4)


def test_a_writer_compacts_the_files_every_few_appends_and_each_version_reads_as_before(
    tmp_path: Path,
) -> None:
    """Compaction (every 3 appends here) is a version of its own that moves no row: the rows
    once each, every earlier version as it was, the batch recorded, fewer files."""
    from deltalake import DeltaTable

    folder = tmp_path / "h"
    writer = HistoryWriter(folder, "a", compact_every=3)
    for batch in range(1, 8):
        assert writer.append(pa.table({"k": [batch, -batch]}), batch)
    table = DeltaTable(str(folder))
    assert table.version() == 8  # 7 appends (versions 0-6), compactions at 3 and 6 appends
    assert len(table.file_uris()) < 7
    keys = [int(k) for k in read_history(folder).column("k").to_pylist() if k is not None]
    assert sorted(keys) == sorted(k for b in range(1, 8) for k in (b, -b))
    rows_per_version = [read_history(folder, version=v).num_rows for v in range(9)]
    assert rows_per_version == [2, 4, 6, 6, 8, 10, 12, 12, 14]
    assert applied_version(folder, "a") == 7
    assert HistoryWriter(folder, "a").recorded == 7


def test_an_absent_history_says_how_to_write_it(tmp_path: Path) -> None:
    assert history_version(tmp_path / "none") is None
    with pytest.raises(SourceError) as raised:
        read_history(tmp_path / "none")
    assert "features stream" in (raised.value.fix or "")


def test_training_reads_a_pinned_version_and_the_manifest_records_it(tmp_path: Path) -> None:
    folder = tmp_path / "history"
    t = pa.array([1_767_225_600_000_000] * 2, pa.timestamp("us", tz="UTC"))
    append_history(folder, pa.table({"k": [1, 2], "ts": t}), app_id="ev", version=1)
    append_history(folder, pa.table({"k": [3, 4], "ts": t}), app_id="ev", version=2)
    text = (
        "name: h\nsources:\n  ev: {kind: nats, url: 'nats://127.0.0.1:4222', subject: a.b, "
        "stream: S, durable: d, timestamp: ts, history: history}\n"
    )
    project = Project(
        load_spec_text(text, str(tmp_path / "t.yaml"), base_dir=tmp_path),
        tmp_path / "t.yaml",
        tmp_path / ".st",
    )
    con = connect()
    try:
        staged = stage_sources(project, con, ["ev"], run_id=uuid.uuid4().hex)["ev"]
        first = staged.fingerprint
        assert staged.rows == 4
        assert staged.manifest()["history"] == {"path": str(folder.resolve()), "version": 1}
        append_history(folder, pa.table({"k": [5], "ts": t[:1]}), app_id="ev", version=3)
        again = stage_sources(project, con, ["ev"], run_id=uuid.uuid4().hex)["ev"]
    finally:
        con.close()
    assert again.manifest()["history"]["version"] == 2
    assert (again.rows, again.fingerprint != first) == (5, True)
