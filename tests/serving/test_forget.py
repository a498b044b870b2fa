"""Erasing a unit's records from a log folder: gone from the files, the rest byte for byte, and
a log cursor moved so that reading on gives exactly the kept records it had not read yet."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.monitoring.columnar import compact, sidecar_path
from taxiway.monitoring.segments import LogCursor, read_new
from taxiway.serving.forget import _move_marks, erase_from_folder, unit_digest
from taxiway.serving.log_files import LOG_GLOB

NAME = "predictions-w1-20261206T050000-0000.jsonl"
SCHEMA = pa.schema([("request_id", pa.string())])


def _line(i: int, unit: str) -> bytes:
    return orjson.dumps({"request_id": f"r{i}", "unit": unit, "entities": {"c": unit}}) + b"\n"


@settings(max_examples=60, deadline=None)
@given(
    units=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=40),
    read_first=st.integers(min_value=0, max_value=40),
)
def test_a_moved_cursor_reads_on_from_the_same_record(units: list[str], read_first: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / NAME
        log.write_bytes(b"".join(_line(i, u) for i, u in enumerate(units)))
        first = min(read_first, len(units))
        prefix = b"".join(_line(i, u) for i, u in enumerate(units[:first]))
        # the monitor's cursor after the first `first` records, as it stores it
        cursor = LogCursor()
        if first:
            partial = folder / "partial"
            partial.mkdir()
            (partial / NAME).write_bytes(prefix)
            _, cursor = read_new(partial, LOG_GLOB, LogCursor(), schema=SCHEMA)
            mark = cursor.files[NAME]
            cursor.files[NAME] = type(mark)(
                mark.offset, log.stat().st_ino, mark.head, mark.head_bytes
            )
        stored = cursor.to_dict()

        erased = erase_from_folder(folder, lambda r: r.get("unit") == "a")

        assert erased.records == units.count("a")
        assert b'"a"' not in log.read_bytes()
        kept = [f"r{i}" for i, u in enumerate(units) if u != "a"]
        assert [orjson.loads(x)["request_id"] for x in log.read_bytes().splitlines()] == kept
        _move_marks(stored, {(r.name, r.old_inode): r for r in erased.rewrites})
        table, after = read_new(folder, LOG_GLOB, LogCursor.from_dict(stored), schema=SCHEMA)
        unread = [f"r{i}" for i, u in enumerate(units) if u != "a" and i >= first]
        assert table.column("request_id").to_pylist() == unread
        assert after.notes == ()  # not taken for a replaced file


def test_torn_lines_and_other_files_stay_and_the_sidecar_goes(tmp_path: Path) -> None:
    log = tmp_path / NAME
    log.write_bytes(_line(1, "a") + b'{"torn\n' + _line(2, "b") + b'{"unit": "a", "part')
    other = tmp_path / "predictions-w2-20261206T050000-0000.jsonl"
    other.write_bytes(_line(3, "b"))
    compact(log)
    assert sidecar_path(log).exists()
    before = other.stat()

    erased = erase_from_folder(tmp_path, lambda r: r.get("unit") == "a")

    assert (erased.records, erased.files, erased.request_ids) == (1, 1, {"r1"})
    assert log.read_bytes() == b'{"torn\n' + _line(2, "b") + b'{"unit": "a", "part'
    assert not sidecar_path(log).exists()
    assert other.stat().st_ino == before.st_ino  # untouched: nothing of the unit in it


def test_no_folder_erases_nothing(tmp_path: Path) -> None:
    assert erase_from_folder(tmp_path / "absent", lambda r: True).records == 0


def test_the_audit_keeps_a_digest_not_the_unit() -> None:
    assert unit_digest("100017") != "100017"
    assert len(unit_digest("100017")) == 64
