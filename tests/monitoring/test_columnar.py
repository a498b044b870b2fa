"""The columnar sidecar of a closed log file gives the same answers as parsing its JSON."""

from __future__ import annotations

import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxiway.errors import MonitoringError
from taxiway.monitoring.columnar import (
    TIME,
    compact,
    compact_folder,
    read_sidecar,
    remove_sidecar,
    sidecar_path,
    times_of,
)
from taxiway.monitoring.segments import LogCursor, log_schema, read_new


def _schema(*fields: pa.Field[Any]) -> pa.Schema:
    """A schema of fields of different types (a literal list of them infers as list[object])."""
    return pa.schema(fields)


NAME = "predictions-w1-20261206T050000-0000.jsonl"
PATTERN = "predictions-*.jsonl"
SCHEMAS = {
    "monitor": log_schema(["age", "spend"], ["plan"]),
    "rollout": _schema(
        pa.field("ts", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("arm", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("latency_ms", pa.float64()),
    ),
    "outcomes": pa.schema([("unit", pa.string()), ("name", pa.string()), ("value", pa.string())]),
    "times": _schema(
        pa.field("ts", TIME),
        pa.field("unit", pa.string()),
        pa.field("timestamp", TIME),
        pa.field("received_at", TIME),
        pa.field("request_id", TIME),  # a field no sidecar parses: converted from its text
    ),
}

texts = st.sampled_from(["a", "b", "2026-11-01T00:00:00+00:00", "12", " 7.5", "x y"])
numbers = st.one_of(st.integers(-5, 10**6), st.floats(-1e6, 1e6, allow_nan=False))
noise = st.one_of(st.booleans(), texts, numbers, st.none(), st.just([1]), st.just({"k": 1}))


def _field(typical: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the type the service logs, sometimes null, now and then anything."""
    return st.one_of(typical, typical, typical, typical, st.none(), noise)


RECORD = {
    "ts": _field(st.sampled_from(["2026-11-01T00:00:00+00:00", "2026-11-01 00:00:01"])),
    "timestamp": _field(st.sampled_from(["2026-11-01T00:00:00.5+01:00", "2026-11-01", "soon"])),
    "received_at": _field(st.sampled_from(["2026-11-01T00:00:00Z", "2026-11-01T00:00:09"])),
    "request_id": _field(texts),
    "model_version": _field(st.integers(1, 3)),
    "arm": _field(st.sampled_from(["control", "candidate"])),
    "unit": _field(texts),
    "path": _field(st.just("model")),
    "degraded": _field(st.booleans()),
    "reason": _field(texts),
    "prediction": _field(numbers),
    "latency_ms": _field(numbers),
    "out_of_range": _field(st.lists(texts, max_size=2)),
    "name": _field(st.just("converted")),
    "value": _field(st.one_of(st.booleans(), st.integers(0, 3))),
    "request": st.fixed_dictionaries({"x": numbers}),
    "features": _field(
        st.fixed_dictionaries(
            {},
            optional={"age": _field(numbers), "spend": _field(numbers), "plan": _field(texts)},
        )
    ),
}
records = st.fixed_dictionaries({}, optional=RECORD)


def _line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record) + b"\n"


lines = st.one_of(
    records.map(_line),
    records.map(_line),
    records.map(_line),
    st.tuples(records.map(_line), st.integers(1, 30)).map(lambda t: t[0][: t[1]] + b"\n"),
    st.sampled_from([b"[1]\n", b"3\n", b'"text"\n', b"not json\n", b"\n", b"   \n"]),
)


def _same(a: pa.Table, b: pa.Table) -> bool:
    def clean(value: Any) -> Any:  # nan != nan; inf is kept
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    if a.schema != b.schema:
        return False
    rows_a = [clean(r) for r in a.to_pylist()]
    rows_b = [clean(r) for r in b.to_pylist()]
    return rows_a == rows_b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(lines, min_size=0, max_size=25),
    tail=st.sampled_from([b"", b'{"unit": "torn']),
    cut=st.integers(0, 25),
    schema=st.sampled_from(sorted(SCHEMAS)),
)
def test_the_sidecar_reads_what_the_json_reads(
    body: list[bytes], tail: bytes, cut: int, schema: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / NAME
        cut = min(cut, len(body))
        log.write_bytes(b"".join(body[:cut]))  # a reader got this far before the file closed
        _, cursor = read_new(folder, PATTERN, LogCursor(), schema=SCHEMAS[schema])
        with log.open("ab") as f:
            f.write(b"".join(body[cut:]) + tail)
        expected, after = read_new(folder, PATTERN, cursor, schema=SCHEMAS[schema])
        try:
            compact(log)
        except MonitoringError:
            return  # a field of mixed types: readers parse the JSON, nothing to compare
        assert sidecar_path(log).exists()
        found, found_after = read_new(folder, PATTERN, cursor, schema=SCHEMAS[schema])
        assert _same(found, expected), (found.to_pylist(), expected.to_pylist())
        assert found_after.to_dict() == after.to_dict()


def _clean_log(folder: Path, n: int = 50) -> Path:
    log = folder / NAME
    log.write_bytes(
        b"".join(
            _line(
                {
                    "ts": f"2026-11-01T00:00:{i % 60:02d}+00:00",
                    "unit": f"u{i}",
                    "arm": "control",
                    "model_version": 1,
                    "value": True,
                    "latency_ms": i,
                    "features": {"age": i, "plan": "p"},
                    "request": {"age": i},
                }
            )
            for i in range(n)
        )
        + b'[torn\n{"unit": "u9'
    )
    return log


@pytest.mark.parametrize("schema", sorted(SCHEMAS))
def test_well_typed_records_are_read_from_the_sidecar(tmp_path: Path, schema: str) -> None:
    log = _clean_log(tmp_path)
    compact(log)
    reading = read_sidecar(log, log.stat(), 0, SCHEMAS[schema])
    assert reading is not None
    chunks = list(reading)
    assert sum(table.num_rows for table, _, _ in chunks) == 50
    assert sum(bad for _, _, bad in chunks) == 1
    assert chunks[-1][1] == log.read_bytes().rindex(b"\n") + 1


def test_chunks_stay_near_chunk_bytes_and_cover_every_row(tmp_path: Path) -> None:
    log = _clean_log(tmp_path, 200)
    compact(log)
    reading = read_sidecar(log, log.stat(), 0, SCHEMAS["rollout"], chunk_bytes=1000)
    assert reading is not None
    chunks = list(reading)
    assert len(chunks) > 5
    assert [t.column("unit")[0].as_py() for t, _, _ in chunks[:2]] == [
        "u0",
        chunks[1][0]["unit"][0].as_py(),
    ]
    units = [u for table, _, _ in chunks for u in table.column("unit").to_pylist()]
    assert units == [f"u{i}" for i in range(200)]


def test_a_file_that_changed_is_read_from_its_json(tmp_path: Path) -> None:
    log = _clean_log(tmp_path)
    compact(log)
    with log.open("ab") as f:  # grew after the sidecar was written
        f.write(b'"}\n')
    assert read_sidecar(log, log.stat(), 0, SCHEMAS["rollout"]) is None
    table, _ = read_new(tmp_path, PATTERN, LogCursor(), schema=SCHEMAS["rollout"])
    assert table.num_rows == 51


def test_a_replaced_file_is_not_read_from_the_old_sidecar(tmp_path: Path) -> None:
    log = _clean_log(tmp_path)
    compact(log)
    data = log.read_bytes().replace(b"u1", b"v1")
    log.unlink()
    log.write_bytes(data)  # same size, another inode
    assert read_sidecar(log, log.stat(), 0, SCHEMAS["rollout"]) is None


def test_a_field_read_as_another_type_falls_back_to_the_json(tmp_path: Path) -> None:
    log = tmp_path / NAME
    log.write_bytes(b'{"model_version": 1.5}\n{"model_version": 2}\n')
    compact(log)
    schema = pa.schema([("model_version", pa.int64())])
    assert read_sidecar(log, log.stat(), 0, schema) is None
    table, _ = read_new(tmp_path, PATTERN, LogCursor(), schema=schema)
    assert table.column("model_version").to_pylist() == [None, 2]


def test_mixed_types_leave_no_sidecar(tmp_path: Path) -> None:
    log = tmp_path / NAME
    log.write_bytes(b'{"value": true}\n{"value": 2.5}\n')
    with pytest.raises(MonitoringError):
        compact(log)
    assert not sidecar_path(log).exists()
    assert compact_folder(tmp_path) == []


def test_compact_folder_writes_what_is_missing_and_skips_the_rest(tmp_path: Path) -> None:
    log = _clean_log(tmp_path)
    other = tmp_path / "predictions-w2-20261206T050000-0000.jsonl"
    other.write_bytes(b'{"unit": "a"}\n')
    assert compact_folder(tmp_path, exclude=[other]) == [sidecar_path(log)]
    assert compact_folder(tmp_path, exclude=[other]) == []  # up to date
    assert compact_folder(tmp_path) == [sidecar_path(other)]
    assert not list(tmp_path.glob(PATTERN + "*.tmp"))
    remove_sidecar(log)
    assert not sidecar_path(log).exists()
    os.utime(log)
    assert compact_folder(tmp_path, quiet_seconds=60) == []  # written just now: maybe open


def test_an_empty_file_gets_an_empty_sidecar(tmp_path: Path) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"")
    compact(log)
    reading = read_sidecar(log, log.stat(), 0, SCHEMAS["monitor"])
    assert reading is not None
    assert list(reading) == []


def test_a_list_of_numbers_where_texts_are_logged_is_read_as_texts(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(b'{"out_of_range": [1, "age"]}\n')
    table, _ = read_new(tmp_path, PATTERN, LogCursor())
    assert table.column("out_of_range").to_pylist() == [["1", "age"]]


def test_a_sidecar_is_written_in_large_batches_with_its_times_parsed(tmp_path: Path) -> None:
    log = _clean_log(tmp_path, 20_000)  # ~2 MB: the JSON reader parses it in 1 MB blocks
    compact(log)
    with pa.memory_map(str(sidecar_path(log))) as source:
        reader = pa.ipc.open_file(source)
        assert reader.num_record_batches == 1
        stored = reader.read_all()
    assert stored.schema.field("__time:ts").type == TIME
    reading = read_sidecar(log, log.stat(), 0, pa.schema([("ts", TIME)]))
    assert reading is not None
    parsed = pa.concat_arrays([t.column("ts").combine_chunks() for t, _, _ in reading])
    assert parsed.equals(times_of(stored.column("ts")))


def test_times_are_read_each_on_its_own() -> None:
    texts = ["2026-11-01T00:00:00+01:00", "2026-11-01 00:00:01", "soon", None, "2026-11-01"]
    texts = texts * 20 + ["2026-11-01T00:00:00.1234567+00:00"]
    alone = [times_of(pa.array([text], pa.string()))[0].as_py() for text in texts]
    assert times_of(pa.array(texts, pa.string())).to_pylist() == alone
    assert alone[:5] == [
        datetime(2026, 10, 31, 23, tzinfo=UTC),
        datetime(2026, 11, 1, 0, 0, 1, tzinfo=UTC),
        None,
        None,
        datetime(2026, 11, 1, tzinfo=UTC),
    ]
