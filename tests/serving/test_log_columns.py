"""The prediction log writes a columnar sidecar of each file it rotates, and retention deletes
it with its file."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from taxiway.monitoring.columnar import read_sidecar, sidecar_path
from taxiway.monitoring.segments import LogCursor, log_schema, read_new
from taxiway.serving.log import PredictionLog, log_files

SCHEMA = log_schema(["age"], ["plan"])


def _record(i: int) -> dict[str, object]:
    return {
        "request_id": f"r{i}",
        "model_version": 1,
        "prediction": i / 100,
        "latency_ms": 1.5,
        "features": {"age": i, "plan": "p"},
    }


@pytest.mark.parametrize("sync", ["always", "interval", "never"])
def test_each_rotated_file_gets_a_sidecar_that_reads_as_its_json(tmp_path: Path, sync: str) -> None:
    with PredictionLog(tmp_path, worker="w1", rotate_bytes=2000, sync=sync) as log:  # type: ignore[arg-type]
        for i in range(100):
            log.append_sync(_record(i))
        assert log._compactor is not None
        assert log._compactor.wait(timeout=30)
        files = log_files(tmp_path)
        closed = [path for path in files if path != log.path]
    assert len(closed) >= 2
    for path in closed:
        assert read_sidecar(path, path.stat(), 0, SCHEMA) is not None
    assert not sidecar_path(files[-1]).exists()  # the file open until close has none
    table, _ = read_new(tmp_path, "predictions-*.jsonl", LogCursor(), schema=SCHEMA)
    assert table.column("prediction").to_pylist() == [i / 100 for i in range(100)]
    assert table.column("features").to_pylist()[7] == {"age": 7.0, "plan": "p"}


def test_retention_deletes_a_file_and_its_sidecar(tmp_path: Path) -> None:
    with PredictionLog(
        tmp_path, worker="w1", rotate_bytes=2000, sync="always", retention=timedelta(hours=1)
    ) as log:
        for i in range(20):
            log.append_sync(_record(i))
        assert log._compactor is not None
        assert log._compactor.wait(timeout=30)
        first = log_files(tmp_path)[0]
        assert sidecar_path(first).exists()
        old = time.time() - 7200
        os.utime(first, (old, old))
        for i in range(20, 40):  # another rotation: the writer deletes expired files
            log.append_sync(_record(i))
        assert log._compactor.wait(timeout=30)
    assert not first.exists()
    assert not sidecar_path(first).exists()


def test_a_log_without_columns_writes_no_sidecar(tmp_path: Path) -> None:
    class Plain(PredictionLog):
        columns = False

    with Plain(tmp_path, worker="w1", rotate_bytes=2000) as log:
        for i in range(40):
            log.append_sync(_record(i))
    assert not (tmp_path / "columns").exists()
