"""The prediction log: durable before acknowledged, grouped commits, rotation, retention, PII,
DuckDB reading, failures that surface and heal, and no acknowledged record lost to SIGKILL."""

from __future__ import annotations

import asyncio
import errno
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from taxiway.engines.duckdb import connect
from taxiway.errors import ServingError
from taxiway.serving.log import (
    MASK,
    PredictionLog,
    Sync,
    count_records,
    log_files,
    open_prediction_log,
    read_predictions,
)
from taxiway.spec.models import PredictionLogSpec

WRITER = Path(__file__).with_name("_log_writer.py")
DAY = 24 * 3600


def lines(folder: Path) -> list[dict[str, Any]]:
    """Every complete record in ``folder``, in file order; fails on a torn line mid-file."""
    records = []
    for path in log_files(folder):
        content = path.read_bytes()
        for line in content.splitlines():
            records.append(orjson.loads(line))
    return records


@pytest.fixture(params=["always", "interval"])
def log(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PredictionLog]:
    """A log in each way of writing: the writer thread (always), the caller (interval)."""
    with PredictionLog(tmp_path / "log", worker="test", sync=request.param) as opened:
        yield opened


def in_writer_thread() -> bool:
    return threading.current_thread().name.startswith("taxiway-prediction-log")


def eventually(condition: Callable[[], bool], seconds: float = 5) -> bool:
    """Whether ``condition`` holds within ``seconds`` (for work a background thread does)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)
    return condition()


def rotated(log: PredictionLog, old: Path | None) -> Path:
    """The file ``log`` writes once it has left ``old`` (rotation follows the acknowledgement)."""
    deadline = time.monotonic() + 5
    while (log.path is None or log.path == old) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert log.path is not None
    assert log.path != old
    return log.path


# ---------------------------------------------------------------------- what is written


def test_records_are_written_in_order_and_read_back_equal(log: PredictionLog) -> None:
    when = datetime(2026, 5, 9, 12, 30, tzinfo=UTC)
    for i in range(50):
        log.append_sync(
            {
                "request_id": f"r{i}",
                "ts": when,
                "prediction": np.float64(i / 100),
                "features": {"count": np.int64(i), "ratio": math.nan, 7: "int key"},
                "entities": {"customer": str(i)},
            }
        )
    records = lines(log.folder)
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(50)]
    assert records[3] == {
        "request_id": "r3",
        "ts": "2026-05-09T12:30:00+00:00",
        "prediction": 0.03,
        "features": {"count": 3, "ratio": None, "7": "int key"},
        "entities": {"customer": "3"},
    }
    assert log.stats()["records"] == 50


def test_a_value_json_cannot_hold_is_written_as_text(log: PredictionLog) -> None:
    log.append_sync({"request_id": "r1", "amount": __import__("decimal").Decimal("1.50")})
    assert lines(log.folder) == [{"request_id": "r1", "amount": "1.50"}]


def test_pii_values_are_masked_before_they_reach_the_disk(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, pii={"email", "customer_stats__email"}) as log:
        log.append_sync(
            {
                "request_id": "r1",
                "entities": {"email": "ann@example.com"},
                "request": {"email": "ann@example.com", "age": 31},
                "features": {"customer_stats__email": "ann@example.com", "orders": 4},
            }
        )
    text = b"".join(path.read_bytes() for path in log_files(tmp_path))
    assert b"ann@example.com" not in text
    [record] = lines(tmp_path)
    assert record["request"] == {"email": MASK, "age": 31}
    assert record["features"] == {"customer_stats__email": MASK, "orders": 4}
    assert record["entities"] == {"email": MASK}


# ---------------------------------------------------------------------- group commit


def test_concurrent_async_appends_share_commits(tmp_path: Path) -> None:
    async def run(log: PredictionLog) -> None:
        await asyncio.gather(*(log.append({"request_id": f"r{i}"}) for i in range(400)))

    with PredictionLog(tmp_path, sync="always") as log:
        asyncio.run(run(log))
        stats = log.stats()
    assert stats["records"] == 400
    assert stats["batches"] <= 400 / 4, stats
    assert sorted(r["request_id"] for r in lines(tmp_path)) == sorted(f"r{i}" for i in range(400))


def test_concurrent_threads_share_commits(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, sync="always") as log:

        def appender(worker: int) -> None:
            for i in range(50):
                log.append_sync({"request_id": f"{worker}-{i}"})

        threads = [threading.Thread(target=appender, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = log.stats()
    assert stats["records"] == 400
    assert stats["batches"] < 400, stats
    assert count_records(tmp_path) == 400


def test_a_full_queue_makes_appenders_wait_for_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, gate = threading.Event(), threading.Event()
    real_sync = os.fdatasync

    def held(fd: int) -> None:
        if in_writer_thread():
            entered.set()
            gate.wait(10)
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", held)

    async def run(log: PredictionLog) -> None:
        first = asyncio.create_task(log.append({"request_id": "first"}))
        while not entered.is_set():
            await asyncio.sleep(0.001)  # until the writer holds the first batch in fdatasync
        rest = [asyncio.create_task(log.append({"request_id": f"r{i}"})) for i in range(20)]
        await asyncio.sleep(0.05)
        assert log.stats()["pending"] == 5  # the rest wait for room
        assert not any(task.done() for task in rest)
        gate.set()
        await asyncio.gather(first, *rest)

    with PredictionLog(tmp_path, max_pending=5, sync="always") as log:
        asyncio.run(run(log))
    assert count_records(tmp_path) == 21


# ---------------------------------------------------------------------- files


def test_files_rotate_by_size_and_keep_every_record_in_order(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, worker="w", rotate_bytes=1000) as log:
        for i in range(100):
            log.append_sync({"request_id": f"r{i:03d}", "pad": "x" * 60})
        stats = log.stats()
    files = log_files(tmp_path)
    assert len(files) >= 8
    assert stats["files_opened"] == len(files)
    assert all(path.stat().st_size <= 1000 + 100 for path in files)
    assert [r["request_id"] for r in lines(tmp_path)] == [f"r{i:03d}" for i in range(100)]


@pytest.mark.parametrize("sync", ["always", "interval", "never"])
def test_retention_deletes_files_not_written_for_longer(tmp_path: Path, sync: Sync) -> None:
    def fake(name: str, age_s: float) -> Path:
        path = tmp_path / name
        path.write_text('{"request_id": "old"}\n')
        os.utime(path, (time.time() - age_s, time.time() - age_s))
        return path

    old = fake("predictions-other-20200101T000000-0000.jsonl", 10 * DAY)
    recent = fake("predictions-other-20260101T000000-0001.jsonl", 3600)
    unrelated = fake("notes.jsonl", 10 * DAY)
    with PredictionLog(tmp_path, rotate_bytes=100, retention=timedelta(days=1), sync=sync) as log:
        assert not old.exists()  # at start
        assert recent.exists()
        assert unrelated.exists()
        first = log.path
        assert first is not None
        log.append_sync({"request_id": "r1", "pad": "x" * 100})
        current = rotated(log, first)
        os.utime(first, (time.time() - 2 * DAY, time.time() - 2 * DAY))
        older = fake("predictions-other-20200102T000000-0000.jsonl", 10 * DAY)
        os.utime(current, (time.time() - 2 * DAY, time.time() - 2 * DAY))
        log.append_sync({"request_id": "r2", "pad": "x" * 100})
        rotated(log, current)
        # on rotation: by the writer thread (always) or the syncer thread, never the caller's
        assert eventually(lambda: log.stats()["files_expired"] == 3), log.stats()
        assert not older.exists()
        assert not first.exists()
        assert current.exists()  # written just now: not expired
    assert recent.exists()
    assert unrelated.exists()


def test_an_idle_log_still_deletes_expired_files(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, retention=timedelta(seconds=0.2)) as log:
        log.append_sync({"request_id": "r1"})
        stale = tmp_path / "predictions-other-20200101T000000-0000.jsonl"
        stale.write_text('{"request_id": "old"}\n')
        deadline = time.monotonic() + 5
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not stale.exists()
        assert log.path is not None
        assert log.path.exists()


def test_a_file_deleted_under_the_writer_is_replaced_not_written_blind(
    log: PredictionLog,
) -> None:
    log.append_sync({"request_id": "r1"})
    first = log.path
    assert first is not None
    first.unlink()  # e.g. another worker's retention, while this one was idle
    log.append_sync({"request_id": "r2"})
    assert log.path != first
    assert [r["request_id"] for r in lines(log.folder)] == ["r2"]


def test_two_logs_with_one_worker_name_never_share_a_file(tmp_path: Path) -> None:
    with (
        PredictionLog(tmp_path, worker="same") as one,
        PredictionLog(tmp_path, worker="same") as two,
    ):
        one.append_sync({"request_id": "one"})
        two.append_sync({"request_id": "two"})
        assert one.path != two.path
    assert len(log_files(tmp_path)) == 2
    assert count_records(tmp_path) == 2


def test_open_prediction_log_follows_the_spec(tmp_path: Path) -> None:
    default = open_prediction_log(PredictionLogSpec(), state_dir=tmp_path, pii=["email"])
    default.close()
    assert default.folder == tmp_path / "predictions"
    assert default.rotate_bytes == 64 * 1024 * 1024
    assert default.sync == "interval"
    spec = PredictionLogSpec(
        path=str(tmp_path / "elsewhere"),
        rotate_mb=0.5,
        retention="7d",
        sync="interval",
        sync_interval="50ms",
    )
    with open_prediction_log(spec, state_dir=tmp_path) as log:
        log.append_sync({"request_id": "r1"})
    assert log.folder == tmp_path / "elsewhere"
    assert (log.rotate_bytes, log.retention) == (512 * 1024, timedelta(days=7))
    assert (log.sync, log.sync_interval) == ("interval", 0.05)
    assert count_records(tmp_path / "elsewhere") == 1


def test_a_worker_name_that_cannot_be_a_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServingError, match="worker name"):
        PredictionLog(tmp_path, worker="../escape")


# ---------------------------------------------------------------------- failures


def test_a_failed_write_raises_leaves_no_torn_line_and_the_log_recovers(
    log: PredictionLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append_sync({"request_id": "before"})
    real_write = os.write
    broken = [True]
    calls = [0]

    writer = in_writer_thread if log.sync == "always" else lambda: True

    def disk_full(fd: int, data: Any) -> int:
        if not (broken[0] and writer()):
            return real_write(fd, data)
        calls[0] += 1
        if calls[0] == 1:  # half of the batch reaches the file, then the disk is full
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", disk_full)

    async def refused() -> None:
        await asyncio.gather(*(log.append({"request_id": f"lost{i}"}) for i in range(5)))

    with pytest.raises(ServingError, match="No space left") as caught:
        asyncio.run(refused())
    assert "free space" in str(caught.value)
    with pytest.raises(ServingError, match="No space left"):
        log.append_sync({"request_id": "lost-sync"})
    broken[0] = False
    log.append_sync({"request_id": "after"})
    asyncio.run(log.append({"request_id": "after-async"}))
    # every line parses: the half-written batch was taken back, not left mid-file
    assert [r["request_id"] for r in lines(log.folder)] == ["before", "after", "after-async"]
    # the writer thread commits the five in one batch; appenders write one record each
    assert log.stats()["errors"] == (2 if log.sync == "always" else 6)


def test_a_folder_that_cannot_be_written_raises_and_the_log_recovers(
    log: PredictionLog,
) -> None:
    log.append_sync({"request_id": "before"})
    shutil.rmtree(log.folder)
    log.folder.write_text("a file where the folder was")
    with pytest.raises(ServingError, match="cannot be written"):
        asyncio.run(log.append({"request_id": "refused"}))
    log.folder.unlink()
    asyncio.run(log.append({"request_id": "after"}))
    assert [r["request_id"] for r in lines(log.folder)] == ["after"]


def test_a_log_that_cannot_be_opened_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(ServingError, match="cannot be written"):
        PredictionLog(tmp_path / "taken" / "log")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_bug_in_the_writer_fails_appends_instead_of_hanging_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(fd: int) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(os, "fdatasync", bug)
    with PredictionLog(tmp_path, sync="always") as log:  # the writer thread's mode
        with pytest.raises(ServingError, match="a bug"):
            asyncio.run(log.append({"request_id": "r1"}))
        with pytest.raises(ServingError, match="writer stopped"):
            log.append_sync({"request_id": "r2"})


def test_close_commits_queued_records_and_is_idempotent(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)

    async def run() -> None:
        tasks = [asyncio.create_task(log.append({"request_id": f"r{i}"})) for i in range(50)]
        await asyncio.sleep(0)  # every task has queued its record
        log.close()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    log.close()
    assert count_records(tmp_path) == 50
    with pytest.raises(ServingError, match="closed"):
        log.append_sync({"request_id": "late"})


def test_a_log_opened_before_a_fork_refuses_the_child_and_serves_the_parent(
    log: PredictionLog,
) -> None:
    log.append_sync({"request_id": "before"})
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report what appending does, then leave without cleanup
        try:
            log.append_sync({"request_id": "child"})
            outcome = b"appended"
        except ServingError as error:
            outcome = error.message.encode()
        os.write(write_end, outcome)
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"opened in a parent process" in outcome
    log.append_sync({"request_id": "after"})
    log.close()
    assert [r["request_id"] for r in lines(log.folder)] == ["before", "after"]


# ---------------------------------------------------------------------- reading


def test_duckdb_reads_every_file_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    with (
        PredictionLog(tmp_path, worker="a") as a,
        PredictionLog(tmp_path, worker="b") as b,
    ):
        for i in range(30):
            (a if i % 2 else b).append_sync(
                {"request_id": f"r{i}", "prediction": i / 10, "features": {"x": i}}
            )
    with PredictionLog(tmp_path, worker="odd") as odd:  # types DuckDB cannot concatenate
        odd.append_sync(
            {
                "request_id": "r30",
                "prediction": 3.0,
                "reason": None,
                "features": {"x": None, 'odd "key': None},
                "request": {"tags": [1, "a", [2]]},
            }
        )
    PredictionLog(tmp_path, worker="idle").close()  # an empty file
    torn = tmp_path / "predictions-killed-20260101T000000-0000.jsonl"
    torn.write_bytes(b'{"request_id": "r31", "prediction": 3.1}\n{"request_id": "r32", "pred')
    assert count_records(tmp_path) == 32
    con = connect()
    read_predictions(con, tmp_path)
    rows = con.execute("SELECT request_id, prediction FROM predictions").fetchall()
    assert sorted(rows) == sorted((f"r{i}", i / 10) for i in range(32))
    assert con.execute("SELECT features.x FROM predictions WHERE request_id = 'r7'").fetchall() == [
        (7,)
    ]
    with PredictionLog(tmp_path, worker="later") as later:  # after the view was created
        later.append_sync({"request_id": "r32", "prediction": 3.2, "arm": "candidate"})
    assert con.execute("SELECT arm FROM predictions WHERE request_id = 'r32'").fetchall() == [
        ("candidate",)
    ]
    read_predictions(
        con, tmp_path, "typed log", columns={"request_id": "VARCHAR", "prediction": "FLOAT"}
    )
    assert con.execute('SELECT count(*), sum(prediction) FROM "typed log"').fetchall() == [
        (33, pytest.approx(sum(i / 10 for i in range(33)), rel=1e-5))
    ]


def test_duckdb_column_types_come_from_every_record(tmp_path: Path) -> None:
    path = tmp_path / "predictions-w-20260101T000000-0000.jsonl"
    rows: list[dict[str, Any]] = [
        {"request_id": f"r{i}", "prediction": 1, "reason": None} for i in range(25_000)
    ]
    rows.append({"request_id": "last", "prediction": 0.5, "reason": "stale features"})
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    con = connect()
    read_predictions(con, tmp_path)
    assert con.execute(
        "SELECT prediction, reason FROM predictions WHERE request_id = 'last'"
    ).fetchall() == [(0.5, "stale features")]


def test_reading_a_folder_with_no_log_says_so(tmp_path: Path) -> None:
    with pytest.raises(ServingError, match="no prediction has been logged"):
        read_predictions(connect(), tmp_path / "missing")


# ---------------------------------------------------------------------- sync modes


def test_interval_sync_acknowledges_before_syncing_and_syncs_in_the_background(
    tmp_path: Path,
) -> None:
    with PredictionLog(tmp_path / "i", sync="interval", sync_interval=0.05) as log:
        for i in range(20):
            log.append_sync({"request_id": f"r{i}"})
        assert log.stats()["records"] == 20
        deadline = time.monotonic() + 5
        while log.stats()["syncs"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        synced = log.stats()["syncs"]
        time.sleep(0.2)  # nothing written since: nothing to sync
        idle = log.stats()["syncs"]
    assert synced >= 1
    assert idle == synced
    with PredictionLog(tmp_path / "n", sync="never") as log:
        log.append_sync({"request_id": "r"})
        time.sleep(0.1)
    assert log.stats()["syncs"] == 0
    assert count_records(tmp_path / "i") == 20


def test_interval_sync_syncs_a_file_before_letting_it_go(tmp_path: Path) -> None:
    with PredictionLog(
        tmp_path, sync="interval", sync_interval=3600, rotate_bytes=1
    ) as log:  # every batch rotates; the interval never comes
        log.append_sync({"request_id": "r1"})
        log.append_sync({"request_id": "r2"})
    assert log.stats()["syncs"] == 2
    assert count_records(tmp_path) == 2


@pytest.mark.parametrize("sync", ["always", "interval", "never"])
def test_rotation_never_waits_for_the_disk_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: Sync
) -> None:
    """Every fsync runs off the event loop's thread, and appends go on across rotations while
    every fsync is held: a rotation that synced the old file inline would stall right there."""
    real_fsync, real_fdatasync = os.fsync, os.fdatasync
    released = threading.Event()
    loop_thread: list[threading.Thread] = []
    on_loop: list[str] = []
    elsewhere: list[str] = []

    def held(real: Callable[[int], None], name: str) -> Callable[[int], None]:
        def recorded(fd: int) -> None:
            if threading.current_thread() in loop_thread:
                on_loop.append(name)  # recorded, not held: the test fails instead of hanging
            else:
                elsewhere.append(name)
                if sync != "always":  # the writer thread's fdatasync is the acknowledgement
                    released.wait(30)
            real(fd)

        return recorded

    log = PredictionLog(tmp_path, worker="w", rotate_bytes=300, sync=sync, sync_interval=0.01)
    monkeypatch.setattr(os, "fsync", held(real_fsync, "fsync"))
    monkeypatch.setattr(os, "fdatasync", held(real_fdatasync, "fdatasync"))

    async def appends() -> None:
        loop_thread.append(threading.current_thread())
        for i in range(60):  # ~90 bytes each: a rotation every 4 records
            await log.append({"request_id": f"r{i:02d}", "pad": "x" * 50})

    try:
        asyncio.run(asyncio.wait_for(appends(), timeout=20))
        files = log_files(tmp_path)
        assert len(files) >= 10
        assert on_loop == []
    finally:
        released.set()
        log.close()
    assert on_loop == []
    if sync == "never":
        assert elsewhere == []
    else:  # interval: the syncer synced the files it was handed, and their folder entries
        assert elsewhere.count("fdatasync") >= len(files) - 1
        assert "fsync" in elsewhere
    assert [r["request_id"] for r in lines(tmp_path)] == [f"r{i:02d}" for i in range(60)]


@pytest.mark.parametrize("bad", [{"sync": "sometimes"}, {"sync_interval": 0}])
def test_a_bad_sync_setting_is_refused(tmp_path: Path, bad: dict[str, Any]) -> None:
    with pytest.raises(ServingError, match="sync"):
        PredictionLog(tmp_path, **bad)


# ---------------------------------------------------------------------- SIGKILL


@pytest.mark.parametrize("sync", ["always", "interval", "never"])
def test_sigkill_under_load_loses_no_acknowledged_record(tmp_path: Path, sync: str) -> None:
    folder = tmp_path / "log"
    child = subprocess.Popen(
        [sys.executable, str(WRITER), str(folder), sync],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(acked) < 2000 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(line.decode().rstrip("\n"))
        child.send_signal(signal.SIGKILL)
        # what the child printed before it died was acknowledged too; a line cut by the kill
        # (no newline) was not
        rest = child.stdout.read().decode()
        acked += rest.split("\n")[:-1]
    finally:
        child.kill()
        _, errors = child.communicate()
        stderr = errors.decode()
    assert child.returncode == -signal.SIGKILL, stderr
    assert len(acked) >= 2000, stderr
    logged: dict[str, Path] = {}
    for path in log_files(folder):
        for line in path.read_bytes().splitlines():
            try:
                logged[orjson.loads(line)["request_id"]] = path
            except orjson.JSONDecodeError:
                continue  # a torn last line: written, never acknowledged
    missing = set(acked) - set(logged)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged records are not in the log"
    assert count_records(folder) >= len(acked)
    # the kill came after rotations, and records acknowledged before and after one of them
    # (in files the writer had let go of, and in the file it was writing) are all read back
    files = log_files(folder)
    assert len(files) > 2
    assert {logged[request_id] for request_id in acked} >= {files[0], files[-2]}
    con = connect()
    read_predictions(con, folder)
    assert con.execute("SELECT count(*) FROM predictions").fetchall() == [(count_records(folder),)]
