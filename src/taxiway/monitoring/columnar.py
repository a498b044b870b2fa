"""Columnar sidecars of the prediction log's closed files, so reading a log is not re-parsing JSON.

The JSON-lines files stay the log's source of truth. Once a file is closed (rotated), the
service's background compactor (:mod:`taxiway.serving.log_files`) parses it once into an Arrow
IPC file, ``<log folder>/columns/<file name>.arrow`` (no log glob matches it): every field of
every record, as pyarrow infers it, plus hidden columns: ``__end``, the byte offset just after
each record's line, and ``__time:<field>`` for each time field logged as text (``ts``,
``timestamp``, ``received_at``): the text read by :func:`times_of`, so a reader asking for the
field as ``timestamp[us, UTC]`` parses nothing. Record batches hold :data:`_BATCH_ROWS` rows
(not the JSON reader's ~2,700), so a reader's columns are mostly one contiguous array. The
file's schema metadata names the source (name, size, inode, a digest of its first KiB) and
lists the lines a reader skips (torn, or not a JSON object). It is written to a temp name and
renamed, so a reader sees a whole sidecar or none.

:func:`~taxiway.monitoring.segments.iter_new` reads a file's sidecar instead of its JSON when
the sidecar's source is the file as it is now (same inode, size and first bytes) and every
column asked for converts exactly as the JSON path would convert it (:func:`_converter`; a
text field asked as :data:`TIME` is :func:`times_of` of its text on both paths, the sidecar's
stored one when it has it); it memory-maps the sidecar and keeps the rows past the cursor. Otherwise (no sidecar, the file
grew or was replaced, a field logged with mixed types) it parses the JSON as before, so the
answers are the same either way (tests/monitoring/test_columnar.py checks that over random
records, lines and cursors).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     log = Path(tmp) / "predictions-w1-20261206T050000-0000.jsonl"
...     _ = log.write_bytes(b'{"request_id": "r1", "latency_ms": 3}\\n[1]\\n{"request_id": "r2"}\\n')
...     sidecar = compact(log)
...     reading = read_sidecar(log, log.stat(), 38, pa.schema([("latency_ms", pa.float64())]))
...     sidecar.relative_to(tmp).as_posix(), [(t.num_rows, end, bad) for t, end, bad in reading]
('columns/predictions-w1-20261206T050000-0000.jsonl.arrow', [(1, 63, 1)])
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, cast

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.json as pa_json

from taxiway.errors import MonitoringError

__all__ = [
    "SIDECAR_FOLDER",
    "TIME",
    "compact",
    "compact_folder",
    "float_of",
    "read_sidecar",
    "remove_sidecar",
    "sidecar_path",
    "times_of",
]

SIDECAR_FOLDER: Final = "columns"
"""The sub-folder of a log folder holding the sidecars."""
END: Final = "__end"
"""The column of each record's line end: the byte offset just after its newline."""
TIME: Final = pa.timestamp("us", tz="UTC")
"""The type a reader asks a text time field in to get it parsed (:func:`times_of`)."""
TIME_PREFIX: Final = "__time:"
"""The hidden column ``__time:<field>`` holds the text field ``<field>`` as :data:`TIME`."""
HEAD_BYTES: Final = 1024  # a file's first bytes, kept as a digest to recognise it (segments)
_META: Final = b"taxiway.columns"
_FORMAT: Final = 1
_BLOCK_BYTES: Final = 1024 * 1024  # pyarrow's unit of parsing, as segments uses
_SCAN_BYTES: Final = 64 * 1024 * 1024  # bytes searched for newlines at a time
_BATCH_ROWS: Final = 256 * 1024
_WHITESPACE: Final = np.frombuffer(b" \t\r\x0b\x0c", np.uint8)
_TIMES: Final = ("ts", "received_at", "timestamp")  # strings pyarrow would take for timestamps
Ends = npt.NDArray[np.int64]
_pa: Any = pa  # the stubs refuse a DataType where pyarrow takes any
Converter = Callable[[Any], Any]  # a (chunked) array in the stored type -> in the wanted one


def sidecar_path(log: Path) -> Path:
    """Where the sidecar of the log file ``log`` lives.

    >>> sidecar_path(Path("/logs/predictions-a.jsonl")).as_posix()
    '/logs/columns/predictions-a.jsonl.arrow'
    """
    return log.parent / SIDECAR_FOLDER / f"{log.name}.arrow"


def remove_sidecar(log: Path) -> None:
    """Delete the sidecar of ``log`` (retention deletes it with its file); no error if none."""
    with contextlib.suppress(OSError):
        sidecar_path(log).unlink()


def digest(data: bytes) -> str:
    """The digest a cursor mark keeps of a file's first bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# ---------------------------------------------------------------------- writing


def compact(path: Path, *, threads: bool = False) -> Path:
    """Write the sidecar of the closed log file ``path``; its path.

    Parses the file once (pyarrow, one thread unless ``threads``: it runs in the service's
    background). Raises :class:`MonitoringError` when the file cannot be read as columns (a
    field of mixed JSON types, a line pyarrow reads as several records): readers then parse its
    JSON, as they would without a sidecar.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            stat = os.fstat(f.fileno())
            bad: list[int] = []
            if stat.st_size == 0:
                table, good, lines_end = _empty(), np.zeros(0, np.int64), 0
            else:  # pyarrow's map: no view of it may outlive a Python mmap
                with pa.memory_map(str(path)) as source:
                    if os.fstat(source.fileno()).st_ino != stat.st_ino:
                        raise FileNotFoundError(errno.ENOENT, "replaced while read")
                    table, good, bad, lines_end = _parse(source.read_buffer(), threads)
            f.seek(0)
            head = f.read(min(HEAD_BYTES, stat.st_size))
    except OSError as error:
        raise MonitoringError(
            f"the log file {path} cannot be read for its sidecar: {error.strerror or error}",
            fix="nothing: readers parse its JSON instead",
        ) from None
    meta = {
        "format": _FORMAT,
        "source": path.name,
        "size": stat.st_size,
        "inode": stat.st_ino,
        "head": digest(head),
        "lines_end": lines_end,
        "skipped_ends": bad,
    }
    for name in _TIMES:
        index = table.schema.get_field_index(name)
        if index >= 0 and pa.types.is_string(table.schema.field(index).type):
            table = table.append_column(pa.field(TIME_PREFIX + name, TIME), times_of(table[name]))
    table = table.append_column(END, pa.array(good, pa.int64()))
    table = table.replace_schema_metadata({_META: orjson.dumps(meta)})
    target = sidecar_path(path)
    target.parent.mkdir(exist_ok=True)
    scratch = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with ipc.new_file(str(scratch), table.schema) as writer:
            for start in range(0, table.num_rows, _BATCH_ROWS):  # one batch, not ~100 parsed
                writer.write_table(table.slice(start, _BATCH_ROWS).combine_chunks())
        os.replace(scratch, target)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return target


def compact_folder(
    folder: Path,
    pattern: str = "predictions-*.jsonl",
    *,
    exclude: Iterable[Path] = (),
    quiet_seconds: float = 0.0,
) -> list[Path]:
    """Write the sidecar of every log file in ``folder`` that lacks one matching it; the
    sidecars written. Files in ``exclude`` (being written) and files modified within the last
    ``quiet_seconds`` are left alone; a file that cannot be compacted is skipped."""
    folder = Path(folder)
    left = {Path(p).name for p in exclude}
    written = []
    for path in sorted(folder.glob(pattern)):
        if path.name in left:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if quiet_seconds and stat.st_mtime > time.time() - quiet_seconds:
            continue
        if _Sidecar.open(path, stat) is not None:
            continue
        with contextlib.suppress(MonitoringError):
            written.append(compact(path))
    return written


def _empty() -> pa.Table:
    return pa.table({})


def _parse(data: pa.Buffer, threads: bool) -> tuple[pa.Table, Ends, list[int], int]:
    """(records, their line ends, the skipped lines' ends, the end of the last complete line)."""
    ends = _line_ends(data)
    lines_end = int(ends[-1]) if ends.size else 0
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    content = ends - 1 - starts  # line length without its newline
    array = np.frombuffer(cast("bytes", data), np.uint8)
    blank = content == 0
    filled = np.flatnonzero(~blank)
    maybe = filled[np.isin(array[starts[filled]], _WHITESPACE)]
    for i in maybe.tolist():  # a line starting with white space may be all white space
        blank[i] = not data[starts[i] : ends[i] - 1].to_pybytes().strip()
    kept = ends[~blank]
    buffer = data[:lines_end]
    try:
        table = _read(buffer, threads)
    except pa.ArrowInvalid:
        return (*_parse_lines(data, starts[~blank], kept, threads), lines_end)
    if table.num_rows != kept.size:
        raise MonitoringError(
            f"{table.num_rows} records were read from {kept.size} lines",
            fix="nothing: readers parse its JSON instead",
        )
    return table, kept, [], lines_end


def _parse_lines(
    data: pa.Buffer, starts: Ends, ends: Ends, threads: bool
) -> tuple[pa.Table, Ends, list[int]]:
    """The records of the lines that are JSON objects (each checked, as segments does)."""
    good: list[bytes] = []
    good_ends: list[int] = []
    bad: list[int] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        line = data[start : end - 1].to_pybytes()
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            good.append(line)
            good_ends.append(end)
        else:
            bad.append(end)
    if not good:
        return _empty(), np.zeros(0, np.int64), bad
    joined = b"\n".join(good) + b"\n"
    try:
        table = _read(pa.py_buffer(joined), threads)
    except pa.ArrowInvalid as error:
        raise MonitoringError(
            f"the records cannot be read as columns ({error})",
            fix="nothing: readers parse its JSON instead",
        ) from None
    if table.num_rows != len(good):
        raise MonitoringError(
            f"{table.num_rows} records were read from {len(good)} lines",
            fix="nothing: readers parse its JSON instead",
        )
    return table, np.array(good_ends, np.int64), bad


def _line_ends(data: pa.Buffer) -> Ends:
    """The offset just after each newline."""
    array = np.frombuffer(cast("bytes", data), np.uint8)
    found = [
        np.flatnonzero(array[at : at + _SCAN_BYTES] == 10) + (at + 1)
        for at in range(0, len(array), _SCAN_BYTES)
    ]
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64)


def _read(buffer: pa.Buffer, threads: bool) -> pa.Table:
    """pyarrow's inference over complete lines, with time-looking strings kept as strings."""
    read = pa_json.ReadOptions(use_threads=threads, block_size=_BLOCK_BYTES)
    times = pa.schema([(name, pa.string()) for name in _TIMES])
    options = pa_json.ParseOptions(explicit_schema=times, unexpected_field_behavior="infer")
    table = pa_json.read_json(_reader(buffer), read_options=read, parse_options=options)
    if table.num_rows and _has_times(table.schema):  # another field pyarrow took for times
        options = pa_json.ParseOptions(
            explicit_schema=pa.schema([f.with_type(_no_times(f.type)) for f in table.schema]),
            unexpected_field_behavior="ignore",
        )
        table = pa_json.read_json(_reader(buffer), read_options=read, parse_options=options)
    return table  # a declared time field no record has is a column of nulls: the same answers


def _reader(buffer: pa.Buffer) -> IO[bytes]:
    """A buffer as a file pyarrow reads without copying it."""
    return cast("IO[bytes]", pa.BufferReader(buffer))


def _has_times(schema: pa.Schema) -> bool:
    return any(_no_times(f.type) != f.type for f in schema)


def _no_times(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        return pa.struct([c.with_type(_no_times(c.type)) for c in kind])
    if pa.types.is_list(kind):
        return pa.list_(_no_times(kind.value_type))
    return kind


# ---------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Sidecar:
    """An opened sidecar whose source is the log file as it is now."""

    table: pa.Table
    lines_end: int
    skipped_ends: Ends

    @classmethod
    def open(cls, log: Path, stat: os.stat_result) -> _Sidecar | None:
        """The sidecar of ``log`` if there is one and its source is ``log`` now (``stat``)."""
        try:
            source = pa.memory_map(str(sidecar_path(log)))
            table = ipc.open_file(source).read_all()
            meta = orjson.loads((table.schema.metadata or {})[_META])
            if (meta["format"], meta["size"], meta["inode"]) != (
                _FORMAT,
                stat.st_size,
                stat.st_ino,
            ):
                return None
            with log.open("rb") as f:
                if digest(f.read(HEAD_BYTES)) != meta["head"]:
                    return None
        except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
            return None
        return cls(
            table,
            int(meta["lines_end"]),
            np.array(meta["skipped_ends"], np.int64),
        )


def read_sidecar(
    log: Path,
    stat: os.stat_result,
    offset: int,
    schema: pa.Schema,
    chunk_bytes: int = 32 * 1024 * 1024,
) -> Iterator[tuple[pa.Table, int, int]] | None:
    """The records of ``log`` past byte ``offset`` from its sidecar, as tables of ``schema``:
    ``(records, offset after them, lines skipped)`` per about ``chunk_bytes`` of the file; None
    when there is no usable sidecar (none, another source, a column that would not convert
    exactly as the JSON path converts it), so the caller parses the JSON."""
    sidecar = _Sidecar.open(log, stat)
    if sidecar is None:
        return None
    stored = sidecar.table.schema
    converters = []
    for wanted in schema:
        index = stored.get_field_index(wanted.name)
        parsed = stored.get_field_index(TIME_PREFIX + wanted.name)
        converter: Converter | None
        if wanted.type == TIME and parsed >= 0 and stored.field(parsed).type == TIME:
            index, converter = parsed, _same  # parsed once, when the sidecar was written
        else:
            converter = _converter(stored.field(index).type if index >= 0 else None, wanted.type)
        if converter is None:
            return None
        converters.append((index, converter))
    return _chunks(sidecar, offset, schema, converters, chunk_bytes)


def _chunks(
    sidecar: _Sidecar,
    offset: int,
    schema: pa.Schema,
    converters: list[tuple[int, Converter]],
    chunk_bytes: int,
) -> Iterator[tuple[pa.Table, int, int]]:
    table = sidecar.table
    ends = (
        np.asarray(table.column(END).to_numpy(), np.int64)
        if table.num_rows
        else np.zeros(0, np.int64)
    )
    skipped = sidecar.skipped_ends
    row = int(np.searchsorted(ends, offset, side="right"))
    position = offset
    while position < sidecar.lines_end:
        stop = int(np.searchsorted(ends, position + chunk_bytes, side="right"))
        stop = max(stop, min(row + 1, len(ends)))  # a line longer than a chunk is read whole
        after = sidecar.lines_end if stop >= len(ends) else int(ends[stop - 1])
        part = table.slice(row, stop - row)
        columns = [
            converter(part.column(index) if index >= 0 else part.num_rows)
            for index, converter in converters
        ]
        bad = int(np.count_nonzero((skipped > position) & (skipped <= after)))
        yield pa.Table.from_arrays(columns, schema=schema), after, bad
        row, position = stop, after


def _converter(stored: pa.DataType | None, wanted: pa.DataType) -> Converter | None:
    """How a stored column becomes ``wanted`` exactly as the JSON path makes it; None when that
    is not certain from the stored type alone (the JSON path's answer for, say, numbers read as
    text depends on which numbers share its chunk)."""
    if stored is None or pa.types.is_null(stored):
        return lambda column: _pa.nulls(column if isinstance(column, int) else len(column), wanted)
    if stored == wanted:
        return _same
    if pa.types.is_string(stored) and wanted == TIME:
        return times_of
    if pa.types.is_integer(stored) and (pa.types.is_floating(wanted) or pa.types.is_string(wanted)):
        return lambda column: pc.cast(column, wanted)
    if pa.types.is_boolean(stored) and pa.types.is_string(wanted):
        return lambda column: pc.if_else(column, "True", "False")
    if pa.types.is_boolean(stored) and pa.types.is_floating(wanted):
        return lambda column: pc.cast(pc.if_else(column, math.inf, math.inf), wanted)
    if pa.types.is_string(stored) and pa.types.is_floating(wanted):
        return lambda column: pa.array([float_of(v) for v in column.to_pylist()], type=wanted)
    if pa.types.is_list(stored) and pa.types.is_list(wanted) and wanted.value_type == pa.string():
        if pa.types.is_null(stored.value_type):
            return lambda column: pc.cast(column, wanted)
        return None
    if pa.types.is_struct(stored) and pa.types.is_struct(wanted):
        return _struct_converter(stored, wanted)
    return None


def _struct_converter(stored: pa.StructType, wanted: pa.StructType) -> Converter | None:
    children = []
    for child in wanted:
        index = stored.get_field_index(child.name)
        converter = _converter(stored.field(index).type if index >= 0 else None, child.type)
        if converter is None:
            return None
        children.append((index, converter))

    def convert(column: Any) -> Any:
        array: Any = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        parts = [
            converter(array.field(index) if index >= 0 else len(array))
            for index, converter in children
        ]
        parts = [p.combine_chunks() if isinstance(p, pa.ChunkedArray) else p for p in parts]
        return pa.StructArray.from_arrays(parts, fields=list(wanted), mask=pc.is_null(array))

    return convert


def _same(column: Any) -> Any:
    return column


def times_of(texts: Any) -> Any:
    """ISO 8601 texts (a (chunked) string array) as :data:`TIME`, each read on its own: as
    Python's ``datetime.fromisoformat`` reads it, else as pyarrow's cast reads it, a time
    without an offset being UTC; null when neither can. Vectorised: one cast of all the
    texts when every one has an offset, or none has (the two casts accept disjoint texts and
    agree with Python where both read one); otherwise the texts are halved until the
    unreadable ones are in small pieces read one by one, so a value never depends on its
    neighbours (the JSON path and the sidecar, chunked differently, agree).

    >>> texts = pa.array(["1970-01-01T00:00:01+01:00", "1970-01-01 00:00:02", "soon", None])
    >>> times_of(texts).cast(pa.int64()).to_pylist()
    [-3599000000, 2000000, None, None]
    """
    array: Any = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    for kind in (TIME, _NAIVE):
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pc.cast(pc.cast(array, kind), TIME)
    if len(array) <= _ONE_BY_ONE:
        return pa.array([_iso_time(value) for value in array.to_pylist()], TIME)
    half = len(array) // 2
    return pa.concat_arrays([times_of(array.slice(0, half)), times_of(array.slice(half))])


_NAIVE: Final = pa.timestamp("us")
_ONE_BY_ONE: Final = 32  # a failing piece this small is read a text at a time


def _iso_time(value: object) -> datetime | None:
    """One text as :func:`times_of` reads it."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        for kind in (TIME, _NAIVE):
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                stamp = pc.cast(pc.cast(pa.array([value]), kind), TIME)[0].as_py()
                return cast("datetime", stamp)
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def float_of(value: Any) -> float | None:
    """A JSON value as a float, the way the monitor's profiles read raw values: None stays
    None, numbers and numeric strings are numbers, and anything else is ``inf`` (which the
    profiles count as invalid).

    >>> float_of("2.5"), float_of(True), float_of("n/a"), float_of(None)
    (2.5, inf, inf, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return math.inf
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.inf
    return math.inf
