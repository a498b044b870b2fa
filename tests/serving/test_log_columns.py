"""The prediction log writes a columnar sidecar of each file it rotates, and retention deletes
it with its file."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from taxiway.monitoring.columnar import read_sidecar, sidecar_path
from taxiway.monitoring.segments import LogCursor, log_schema, read_new
from taxiway.serving.log import PredictionLog, log_files
from taxiway.serving.service import Service
from taxiway.spec.project import Project

from .conftest import variant

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


def test_a_service_started_over_an_old_log_compacts_its_closed_files(
    shop: Path, tmp_path: Path
) -> None:
    """Files written before (no sidecars: an older taxiway, a process stopped before it
    rotated) get theirs in the background once the service starts; the files being written
    (this service's, another worker's newest) do not."""
    state = tmp_path / "logs"
    spec = variant(shop, tmp_path, serving=f"  log: {{path: {state / 'predictions'}}}\n")
    project = Project.load(spec, shop.parent / ".taxiway")  # the shop's registry and store
    old = time.time() - 3600
    closed = []
    for folder in (state / "predictions", state / "outcomes"):
        folder.mkdir(parents=True, exist_ok=True)
        for seq in range(2):
            path = folder / f"predictions-gone-20260101T000000-000{seq}.jsonl"
            path.write_text("".join(json.dumps(_record(i)) + "\n" for i in range(5)))
            os.utime(path, (old, old))
            closed.append(path)
    live = state / "predictions" / "predictions-other-20260101T000000-0000.jsonl"
    live.write_text(json.dumps(_record(0)) + "\n")  # another worker's, written just now

    service = Service(project, reload_interval_s=0, rollout_poll_s=0)

    async def start_and_stop() -> None:
        await service.start()
        assert service.compaction is not None
        service.compaction.join(timeout=60)
        await service.stop()

    asyncio.run(start_and_stop())
    for path in closed:
        assert read_sidecar(path, path.stat(), 0, SCHEMA) is not None
    assert not sidecar_path(live).exists()
    assert not any(
        sidecar_path(path).exists()
        for path in log_files(state / "predictions")
        if "gone" not in path.name  # the live file, and the one this service wrote
    )
