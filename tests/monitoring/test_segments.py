"""Reading only the prediction log's new bytes: cursor, torn lines, rotation, retention."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import MonitoringError
from taxiway.monitoring.segments import (
    FileMark,
    LogCursor,
    iter_new,
    log_schema,
    parse_lines,
    read_new,
)
from taxiway.serving.log import PredictionLog
from taxiway.serving.log_files import LOG_GLOB

FILE = "predictions-w1-20261206T050000-0000.jsonl"
SCHEMA = log_schema(["age"], ["plan"])


def line(i: int, **extra: Any) -> bytes:
    record = {
        "ts": f"2026-12-06T05:{i % 60:02d}:00+00:00",
        "request_id": f"r{i}",
        "latency_ms": float(i),
        "features": {"age": float(i), "plan": f"p{i % 3}"},
    } | extra
    return orjson.dumps(record) + b"\n"


def ids(table: Any) -> list[str]:
    return [str(v) for v in table.column("request_id").to_pylist()]


def test_a_second_read_returns_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_bytes(line(1) + line(2))
    table, cursor = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
    assert ids(table) == ["r1", "r2"]
    assert cursor.files[FILE].offset == path.stat().st_size
    with path.open("ab") as f:
        f.write(line(3))
    table, cursor = read_new(tmp_path, LOG_GLOB, cursor, schema=SCHEMA)
    assert ids(table) == ["r3"]
    again, same = read_new(tmp_path, LOG_GLOB, cursor, schema=SCHEMA)
    assert again.num_rows == 0
    assert same == cursor
    assert table.column("features").to_pylist() == [{"age": 3.0, "plan": "p0"}]


def test_an_incomplete_last_line_is_left_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / FILE
    whole = line(1) + line(2)
    path.write_bytes(whole + line(3)[:10])
    table, cursor = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
    assert ids(table) == ["r1", "r2"]
    assert cursor.files[FILE].offset == len(whole)
    with path.open("ab") as f:
        f.write(line(3)[10:])
    table, cursor = read_new(tmp_path, LOG_GLOB, cursor, schema=SCHEMA)
    assert ids(table) == ["r3"]
    assert cursor.skipped == 0


def test_torn_lines_inside_a_file_are_skipped_and_counted(tmp_path: Path) -> None:
    # a kill tears a line; the writer never reopens the file, but a hand-made file may go on
    (tmp_path / FILE).write_bytes(line(1) + line(2)[:25] + b"\n" + b"[1, 2]\n\n" + line(3))
    table, cursor = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
    assert ids(table) == ["r1", "r3"]
    assert cursor.skipped == 2
    assert table.schema == SCHEMA


def test_a_value_of_another_type_is_read_as_the_profiles_read_it(tmp_path: Path) -> None:
    records = [
        line(1, features={"age": "2.5", "plan": 3}),
        line(2, features={"age": True, "plan": None}),
        line(3, features={"age": "abc"}, latency_ms="slow"),
    ]
    (tmp_path / FILE).write_bytes(b"".join(records))
    table, _ = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
    features: list[Any] = table.column("features").to_pylist()
    assert [f["age"] for f in features] == [2.5, math.inf, math.inf]  # inf: invalid
    assert [f["plan"] for f in features] == ["3", None, None]
    assert table.column("latency_ms").to_pylist() == [1.0, 2.0, math.inf]


def test_every_rotated_file_of_the_real_writer_is_read_once(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, worker="w1", rotate_bytes=300, sync="never") as log:
        for i in range(20):
            log.append_sync({"request_id": f"r{i}", "latency_ms": i, "features": {"age": i}})
        table, cursor = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
        assert len(cursor.files) > 3  # rotated
        assert sorted(ids(table), key=lambda r: int(r[1:])) == [f"r{i}" for i in range(20)]
        for i in range(20, 25):
            log.append_sync({"request_id": f"r{i}", "latency_ms": i})
    table, cursor = read_new(tmp_path, LOG_GLOB, cursor, schema=SCHEMA)
    assert sorted(ids(table)) == [f"r{i}" for i in range(20, 25)]
    for name, mark in cursor.files.items():
        assert mark.offset == (tmp_path / name).stat().st_size


def test_a_deleted_file_leaves_the_cursor(tmp_path: Path) -> None:
    old = tmp_path / "predictions-w1-20261206T040000-0000.jsonl"
    old.write_bytes(line(1))
    (tmp_path / FILE).write_bytes(line(2))
    _, cursor = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
    old.unlink()  # retention
    table, cursor = read_new(tmp_path, LOG_GLOB, cursor, schema=SCHEMA)
    assert table.num_rows == 0
    assert list(cursor.files) == [FILE]
    assert cursor.notes == ("1 log file(s) gone since the last read (retention)",)


def test_a_replaced_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_bytes(line(1) + line(2))
    _, cursor = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
    other = tmp_path / "new.tmp"
    other.write_bytes(line(7) + line(8) + line(9))  # longer, different first bytes
    os.replace(other, path)
    table, cursor = read_new(tmp_path, LOG_GLOB, cursor, schema=SCHEMA)
    assert ids(table) == ["r7", "r8", "r9"]
    assert cursor.notes == (f"{FILE} was replaced: read again from its start",)
    path.write_bytes(line(5))  # same inode, shorter than what was read
    table, cursor = read_new(tmp_path, LOG_GLOB, cursor, schema=SCHEMA)
    assert ids(table) == ["r5"]


def test_a_copied_folder_is_not_read_again(tmp_path: Path) -> None:
    source, copy = tmp_path / "a", tmp_path / "b"
    source.mkdir()
    (source / FILE).write_bytes(line(1) + line(2))
    _, cursor = read_new(source, LOG_GLOB, LogCursor(), schema=SCHEMA)
    shutil.copytree(source, copy)  # new inodes, same bytes
    with (copy / FILE).open("ab") as f:
        f.write(line(3))
    table, after = read_new(copy, LOG_GLOB, cursor, schema=SCHEMA)
    assert ids(table) == ["r3"]
    assert after.notes == ()
    assert after.files[FILE].inode == (copy / FILE).stat().st_ino


def test_chunks_bound_memory_and_carry_their_cursor(tmp_path: Path) -> None:
    long = line(2, request_id="x" * 500)
    (tmp_path / FILE).write_bytes(line(1) + long + line(3))
    chunks = list(iter_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA, chunk_bytes=64))
    # 64 bytes hold one short line; the long one is read whole (with what follows it)
    assert [ids(c.table) for c in chunks] == [["r1"], ["x" * 500, "r3"]]
    offsets = [c.cursor.files[FILE].offset for c in chunks]
    assert offsets == [len(line(1)), len(line(1) + long + line(3))]


def test_the_cursor_survives_json(tmp_path: Path) -> None:
    (tmp_path / FILE).write_bytes(line(1) + b"{torn\n" + line(2))
    _, cursor = read_new(tmp_path, LOG_GLOB, LogCursor(), schema=SCHEMA)
    restored = LogCursor.from_dict(orjson.loads(orjson.dumps(cursor.to_dict())))
    assert restored == cursor
    assert restored.skipped == 1
    assert isinstance(restored.files[FILE], FileMark)
    with pytest.raises(MonitoringError, match="cursor is malformed"):
        LogCursor.from_dict({"files": {FILE: {"offset": 1}}})


def test_no_log_folder_is_an_error_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(MonitoringError, match="does not exist") as error:
        read_new(tmp_path / "nope", LOG_GLOB, LogCursor())
    assert "serving.log.path" in (error.value.fix or "")


def test_an_empty_folder_reads_nothing(tmp_path: Path) -> None:
    table, cursor = read_new(tmp_path, LOG_GLOB, LogCursor())
    assert table.num_rows == 0
    assert cursor.files == {}
    assert table.schema == log_schema()


def test_parse_lines_keeps_good_lines_around_bad_ones() -> None:
    table, skipped = parse_lines(line(1) + b'"just a string"\n' + line(2), SCHEMA)
    assert ids(table) == ["r1", "r2"]
    assert skipped == 1


@settings(derandomize=True, deadline=None, max_examples=40)
@given(
    count=st.integers(1, 12),
    cuts=st.lists(st.floats(0, 1), max_size=6),
    chunk=st.sampled_from([40, 100, 1 << 20]),
)
def test_reads_split_anywhere_return_every_record_once(
    tmp_path_factory: pytest.TempPathFactory, count: int, cuts: list[float], chunk: int
) -> None:
    """Appending the log's bytes in pieces cut anywhere (mid-line too), reading after each,
    returns the records of one read, in order, each once."""
    folder = tmp_path_factory.mktemp("log")
    data = b"".join(line(i) for i in range(count))
    points = sorted({int(c * len(data)) for c in cuts} | {len(data)})
    cursor, seen, written = LogCursor(), [], 0
    for point in points:
        with (folder / FILE).open("ab") as f:
            f.write(data[written:point])
        written = point
        for piece in iter_new(folder, LOG_GLOB, cursor, schema=SCHEMA, chunk_bytes=chunk):
            seen += ids(piece.table)
            cursor = piece.cursor
    assert seen == [f"r{i}" for i in range(count)]
    assert cursor.files[FILE].offset == len(data)


def test_a_field_logged_with_another_type_throughout_stays_on_the_fast_path() -> None:
    """A category logged as integers and a number logged as strings are parsed as found
    and converted; the relaxation is remembered for the next chunk."""
    relaxed: dict[Any, Any] = {}
    data = b"".join(
        line(i, features={"age": ["12", "x", None][i % 3], "plan": 12345678901234567 + i})
        for i in range(3)
    )
    table, skipped = parse_lines(data, SCHEMA, relaxed)
    assert skipped == 0
    assert table.schema == SCHEMA
    features: list[Any] = table.column("features").to_pylist()
    assert [f["age"] for f in features] == [12.0, math.inf, None]
    assert [f["plan"] for f in features] == [f"1234567890123456{7 + i}" for i in range(3)]
    assert set(relaxed) == {("features", "age"), ("features", "plan")}
    # the next chunk logs them as declared again, with a float category and a boolean age
    again = line(4, features={"age": 3.5, "plan": 2.5}) + line(5, features={"age": True})
    table, _ = parse_lines(again, SCHEMA, relaxed)
    assert table.column("features").to_pylist() == [
        {"age": 3.5, "plan": "2.5"},
        {"age": math.inf, "plan": None},
    ]


def test_a_field_mixing_types_in_one_chunk_is_converted_value_by_value() -> None:
    data = line(1, features={"plan": "basic"}) + line(2, features={"plan": 7})
    table, skipped = parse_lines(data, SCHEMA, {})
    assert skipped == 0
    features: list[Any] = table.column("features").to_pylist()
    assert [f["plan"] for f in features] == ["basic", "7"]
