"""Reading only what is new in the prediction log, as columns.

The log is a folder of JSON-lines files that only grow (one writer each, never reopened) and
are deleted by retention. A :class:`LogCursor` remembers, per file name, the byte offset just
after the last complete line read, so :func:`read_new` (and :func:`iter_new`, its bounded-memory
form) reads the bytes after it and nothing else:

* a last line without its newline (being written, or torn by a kill) is not read: the cursor
  stays before it, and the next read takes it once it is complete;
* a line that is not a JSON object (a torn line inside a file, which a kill leaves since the
  file is never appended to again) is skipped and counted (``LogCursor.skipped``);
* a file that vanished (retention) is dropped from the cursor;
* a file that was replaced (a smaller size than the offset, or another inode whose first bytes
  differ from those read before) is read again from its start, with a note; a file that only
  moved (a copied folder: new inode, same first bytes) is not.

Records come back as a :class:`pyarrow.Table` with the columns of ``schema`` (default
:func:`log_schema`): parsing is pyarrow's multithreaded JSON reader over each run of new bytes,
with the schema stated so fields outside it (``request``, ``entities``) are skipped and the
``features`` object becomes a struct column; a top-level field asked as
:data:`~taxiway.monitoring.columnar.TIME` is read as text and parsed by
:func:`~taxiway.monitoring.columnar.times_of` (null when unreadable). A run of bytes with a bad line falls back to
checking line by line (orjson), then the good lines are parsed again. A value whose JSON type
differs from the schema's is converted the way the monitor's profiles read raw values: for a
float column, numbers and numeric strings are kept and any other value (a boolean, a word, an
object) becomes ``inf`` (so a profile counts it as invalid, see
:mod:`taxiway.monitoring.profiles`); a string column takes ``str(value)``; other columns get
null. A field logged with one other type throughout (a category as integers; a number as
strings after a vendor changed a format) is still parsed by pyarrow, as found, then converted,
and the next chunks start from that; only a field mixing types within a chunk is converted
value by value in Python.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     log = Path(tmp) / "predictions-w1-20261206T050000-0000.jsonl"
...     _ = log.write_bytes(b'{"request_id": "r1", "latency_ms": 3.5}\\n{"request_id": "r2", "lat')
...     table, cursor = read_new(Path(tmp), "predictions-*.jsonl", LogCursor())
...     first = table.column("request_id").to_pylist(), cursor.files[log.name].offset
...     with log.open("ab") as f:
...         _ = f.write(b'ency_ms": 4.0}\\n')
...     table, cursor = read_new(Path(tmp), "predictions-*.jsonl", cursor)
...     first, table.column("latency_ms").to_pylist(), cursor.files[log.name].offset
((['r1'], 40), [4.0], 80)
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Final, cast

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from taxiway.errors import MonitoringError
from taxiway.monitoring.columnar import (
    HEAD_BYTES,
    TIME,
    digest,
    float_of,
    read_sidecar,
    times_of,
)

__all__ = [
    "CHUNK_BYTES",
    "Chunk",
    "FileMark",
    "LogCursor",
    "iter_new",
    "log_schema",
    "read_new",
]

CHUNK_BYTES: Final = 32 * 1024 * 1024
"""New bytes parsed at a time: bounds memory, whatever the size of the backlog."""
_BLOCK_BYTES: Final = 1024 * 1024  # pyarrow's unit of parallel parsing (a thread per block)
_FLOAT: Final = pa.float64()

_TOP_LEVEL: Final = (
    ("ts", pa.string()),
    ("request_id", pa.string()),
    ("model", pa.string()),
    ("model_version", pa.int64()),
    ("arm", pa.string()),
    ("unit", pa.string()),
    ("path", pa.string()),
    ("degraded", pa.bool_()),
    ("reason", pa.string()),
    ("prediction", pa.float64()),
    ("latency_ms", pa.float64()),
    ("lookup_ms", pa.float64()),
    ("out_of_range", pa.list_(pa.string())),
)


def log_schema(
    numeric: Iterable[str] = (),
    categorical: Iterable[str] = (),
    *,
    prediction: pa.DataType = _FLOAT,
) -> pa.Schema:
    """The columns read from each record: the log's top-level fields, and ``features`` as a
    struct of the named numeric (float64) and categorical (string) features.

    ``ts`` stays a string (the reader converts it; a bad one must not fail the chunk).

    >>> log_schema(["age"], ["plan"]).field("features").type
    StructType(struct<age: double, plan: string>)
    >>> "features" in log_schema().names, log_schema().field("model_version").type
    (False, DataType(int64))
    """
    fields: list[pa.Field[Any]] = [pa.field(name, kind) for name, kind in _TOP_LEVEL]
    fields[[name for name, _ in _TOP_LEVEL].index("prediction")] = pa.field(
        "prediction", prediction
    )
    features: list[pa.Field[Any]] = [pa.field(name, pa.float64()) for name in numeric]
    features += [pa.field(name, pa.string()) for name in categorical]
    if features:
        fields.append(pa.field("features", pa.struct(features)))
    return pa.schema(fields)


@dataclass(frozen=True)
class FileMark:
    """Where reading one file stopped: the byte just after its last complete line read, and
    the file's identity (its inode, and a digest of its first bytes)."""

    offset: int
    inode: int
    head: str = ""  # blake2b of the first min(offset, 1 KiB) bytes
    head_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "offset": self.offset,
            "inode": self.inode,
            "head": self.head,
            "head_bytes": self.head_bytes,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FileMark:
        """The mark :meth:`to_dict` wrote."""
        return cls(int(d["offset"]), int(d["inode"]), str(d["head"]), int(d["head_bytes"]))


@dataclass(frozen=True)
class LogCursor:
    """How far each log file has been read (by file name), and what reading found.

    ``skipped`` counts the lines skipped since the cursor started (torn, or not a JSON
    object); ``notes`` say what the read that made this cursor noticed (replaced files, files
    gone) and are not stored.

    >>> cursor = LogCursor({"predictions-a.jsonl": FileMark(120, 7)}, skipped=1)
    >>> LogCursor.from_dict(cursor.to_dict()) == cursor
    True
    """

    files: dict[str, FileMark] = field(default_factory=dict)
    skipped: int = 0
    notes: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (without the notes)."""
        return {
            "files": {name: mark.to_dict() for name, mark in sorted(self.files.items())},
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LogCursor:
        """The cursor :meth:`to_dict` wrote.

        >>> LogCursor.from_dict({"files": []})
        Traceback (most recent call last):
        ...
        taxiway.errors.MonitoringError: the monitor's log cursor is malformed (files: expected a mapping)
          fix: delete the monitor's state folder to read the log again from its start
        """
        files = d.get("files")
        if not isinstance(files, Mapping):
            raise MonitoringError(
                "the monitor's log cursor is malformed (files: expected a mapping)",
                fix="delete the monitor's state folder to read the log again from its start",
            )
        try:
            marks = {str(name): FileMark.from_dict(mark) for name, mark in files.items()}
            return cls(marks, skipped=int(d.get("skipped", 0)))
        except (KeyError, TypeError, ValueError) as error:
            raise MonitoringError(
                f"the monitor's log cursor is malformed ({error!r})",
                fix="delete the monitor's state folder to read the log again from its start",
            ) from None


@dataclass(frozen=True)
class Chunk:
    """Records parsed from one run of new bytes, and the cursor just after them."""

    table: pa.Table
    cursor: LogCursor


def read_new(
    folder: Path,
    pattern: str,
    cursor: LogCursor,
    *,
    schema: pa.Schema | None = None,
) -> tuple[pa.Table, LogCursor]:
    """Every complete record written to the files of ``folder`` matching ``pattern`` since
    ``cursor``, as one table with the columns of ``schema``, and the cursor after them.

    Holds the whole backlog in memory; :func:`iter_new` reads it a chunk at a time.
    """
    schema = log_schema() if schema is None else schema
    tables = []
    after = cursor
    for chunk in iter_new(folder, pattern, cursor, schema=schema):
        if chunk.table.num_rows:
            tables.append(chunk.table)
        after = chunk.cursor
    return _concat(tables, schema), after


def iter_new(
    folder: Path,
    pattern: str,
    cursor: LogCursor,
    *,
    schema: pa.Schema | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[Chunk]:
    """:func:`read_new` a chunk at a time: each :class:`Chunk` holds the records of at most
    about ``chunk_bytes`` of new bytes (a longer line is read whole) and the cursor just after
    them, so a caller that stops early resumes from the last chunk it used. The last chunk's
    cursor also drops the files that are gone; at least one chunk is yielded."""
    schema = log_schema() if schema is None else schema
    folder = Path(folder)
    if not folder.is_dir():
        raise MonitoringError(
            f"the prediction log folder {folder} does not exist",
            fix="serve some predictions first, or point the monitor at serving.log.path",
        )
    paths = sorted(path for path in folder.glob(pattern) if path.is_file())
    files = {path.name: mark for path in paths if (mark := cursor.files.get(path.name))}
    gone = len(cursor.files) - len(files)
    notes = [f"{gone} log file(s) gone since the last read (retention)"] if gone else []
    skipped = cursor.skipped
    yielded = False
    relaxed: dict[FieldPath, pa.DataType] = {}  # fields logged with another type, chunk after chunk
    for path in paths:
        found = _read_file(path, files.get(path.name), schema, chunk_bytes, relaxed)
        for table, mark, bad, note in found:
            files[path.name] = mark
            skipped += bad
            notes += [note] if note else []
            yielded = True
            yield Chunk(table, LogCursor(dict(files), skipped, tuple(notes)))
    if not yielded or gone:
        yield Chunk(schema.empty_table(), LogCursor(dict(files), skipped, tuple(notes)))


def _read_file(
    path: Path,
    mark: FileMark | None,
    schema: pa.Schema,
    chunk_bytes: int,
    relaxed: dict[FieldPath, pa.DataType],
) -> Iterator[tuple[pa.Table, FileMark, int, str | None]]:
    """(records, mark after them, lines skipped, note) per run of new complete lines."""
    try:
        with path.open("rb") as f:
            stat = os.fstat(f.fileno())
            note = None
            if mark is not None and not _same_file(f, stat, mark):
                note = f"{path.name} was replaced: read again from its start"
                mark = None
            if mark is None:
                mark = FileMark(0, stat.st_ino, digest(b""), 0)
            elif mark.inode != stat.st_ino:  # moved, not replaced: same first bytes
                mark = replace(mark, inode=stat.st_ino)
            if stat.st_size <= mark.offset:
                return
            columns = read_sidecar(path, stat, mark.offset, schema, chunk_bytes)
            if columns is not None:  # a closed file's records, parsed once by the service
                for table, offset, bad in columns:
                    mark = _with_head(replace(mark, offset=offset), f)
                    yield table, mark, bad, note
                    note = None
                return
            offset, size = mark.offset, chunk_bytes
            text = _times_as_text(schema)
            while True:
                f.seek(offset)  # a cut line is read again with the next chunk, not copied
                data = f.read(size)
                end = data.rfind(b"\n") + 1
                if not end:
                    if len(data) < size:  # nothing more, or an incomplete last line
                        return
                    size *= 2  # a line longer than a chunk: read it whole
                    continue
                table, bad = parse_lines(memoryview(data)[:end], text, relaxed)
                table = _with_times(table, schema) if text is not schema else table
                offset, size = offset + end, chunk_bytes
                mark = _with_head(replace(mark, offset=offset), f)
                yield table, mark, bad, note
                note = None
    except FileNotFoundError:  # deleted by retention while we looked
        return
    except OSError as error:
        raise MonitoringError(
            f"the prediction log file {path} cannot be read: {error.strerror or error}",
            fix="make the log folder readable by the monitor",
        ) from None


def _times_as_text(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its top-level :data:`~taxiway.monitoring.columnar.TIME` fields as text:
    what the JSON is parsed as before :func:`_with_times` (a bad time must not fail a chunk)."""
    if all(f.type != TIME for f in schema):
        return schema
    return pa.schema([f.with_type(pa.string()) if f.type == TIME else f for f in schema])


def _with_times(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The text columns read for ``schema``'s time fields, parsed (:func:`times_of`)."""
    columns = [
        times_of(table.column(i)) if f.type == TIME else table.column(i)
        for i, f in enumerate(schema)
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _same_file(f: io.BufferedReader, stat: os.stat_result, mark: FileMark) -> bool:
    if stat.st_size < mark.offset:
        return False
    if stat.st_ino == mark.inode:
        return True
    f.seek(0)
    return digest(f.read(mark.head_bytes)) == mark.head


def _with_head(mark: FileMark, f: io.BufferedReader) -> FileMark:
    """``mark`` with the digest of the file's first complete bytes, up to 1 KiB."""
    if mark.head_bytes >= min(HEAD_BYTES, mark.offset):
        return mark
    position = f.tell()
    f.seek(0)
    head = f.read(min(HEAD_BYTES, mark.offset))
    f.seek(position)
    return replace(mark, head=digest(head), head_bytes=len(head))


def parse_lines(
    data: bytes | memoryview, schema: pa.Schema, relaxed: dict[FieldPath, pa.DataType] | None = None
) -> tuple[pa.Table, int]:
    """Complete JSON lines as a table with ``schema``'s columns, and how many were skipped.

    ``relaxed`` (kept by the caller from one chunk to the next) holds the fields found logged
    with another JSON type than the schema's (a category logged as a number, a number as a
    string): they are parsed as found, then converted.

    >>> table, skipped = parse_lines(b'{"latency_ms": 2}\\n{"lat\\n[1]\\n', log_schema())
    >>> table.column("latency_ms").to_pylist(), skipped
    ([2.0], 2)
    """
    relaxed = {} if relaxed is None else relaxed
    table = _read_fast(data, schema, relaxed)
    if table is not None:
        return table, 0
    good: list[bytes] = []
    records: list[dict[str, Any]] = []
    skipped = 0
    for line in bytes(data).split(b"\n"):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            skipped += 1
            continue
        if not isinstance(record, dict):
            skipped += 1
            continue
        good.append(line)
        records.append(record)
    if not good:
        return schema.empty_table(), skipped
    table = _read_fast(b"\n".join(good), schema, relaxed)  # the bad lines were the trouble
    if table is None:  # values of mixed types in one field
        table = _table_of(records, schema)
    return table, skipped


FieldPath = tuple[str, ...]
"""A field's place: ``("latency_ms",)``, ``("features", "age")``."""
_CONFLICT: Final = re.compile(r"Column\((?P<path>/[^)]*)\) changed from \w+ to (?P<found>\w+)")
_FOUND: Final = {"number": pa.int64(), "string": pa.string(), "boolean": pa.bool_()}
_TRIES: Final = 6


def _read_fast(
    data: bytes | memoryview, schema: pa.Schema, relaxed: dict[FieldPath, pa.DataType]
) -> pa.Table | None:
    """pyarrow's parse of ``data``, with the fields in ``relaxed`` parsed as found and
    converted back (learning a field that every value of the chunk logs with another type);
    None when a line is not JSON or a field mixes types."""
    read = pa_json.ReadOptions(block_size=_BLOCK_BYTES)
    tried: set[frozenset[tuple[FieldPath, str]]] = set()
    for _ in range(_TRIES):
        tried.add(frozenset((path, str(kind)) for path, kind in relaxed.items()))
        options = pa_json.ParseOptions(
            explicit_schema=_with_types(schema, relaxed), unexpected_field_behavior="ignore"
        )
        try:
            table = pa_json.read_json(_input(data), read_options=read, parse_options=options)
        except pa.ArrowInvalid as error:
            change = _relax(str(error), schema, relaxed)
            if change is None or frozenset((p, str(k)) for p, k in change.items()) in tried:
                return None
            relaxed.clear()
            relaxed.update(change)
            continue
        return _restore(table, schema, relaxed) if relaxed else table
    return None


def _relax(
    message: str, schema: pa.Schema, relaxed: dict[FieldPath, pa.DataType]
) -> dict[FieldPath, pa.DataType] | None:
    """The relaxed fields that may parse what ``message`` complains of, or None."""
    change = dict(relaxed)
    if "Failed to convert JSON to int64" in message:  # an integer-looking field holds floats
        if pa.int64() not in relaxed.values():
            return None
        return {p: pa.float64() if k == pa.int64() else k for p, k in change.items()}
    match = _CONFLICT.search(message)
    if match is None:
        return None
    path = tuple(match["path"].strip("/").split("/"))
    found = _FOUND.get(match["found"])
    declared = _type_at(schema, path)
    if found is None or declared is None:
        return None
    convertible: tuple[pa.DataType, ...] = ()
    if pa.types.is_floating(declared):
        convertible = (pa.string(), pa.bool_())
    elif pa.types.is_string(declared):
        convertible = (pa.int64(), pa.bool_())
    if found == declared or (pa.types.is_floating(declared) and found == pa.int64()):
        change.pop(path, None)  # this chunk logs it as declared again
    elif found in convertible:
        change[path] = found
    else:
        return None
    return change


def _type_at(schema: pa.Schema, path: FieldPath) -> pa.DataType | None:
    kind: Any = schema
    for name in path:
        if not isinstance(kind, pa.Schema | pa.StructType):  # a list's items: not relaxed
            return None
        index = kind.get_field_index(name)
        if index < 0:
            return None
        kind = kind.field(index).type
    return cast("pa.DataType", kind)


def _with_types(schema: pa.Schema, relaxed: Mapping[FieldPath, pa.DataType]) -> pa.Schema:
    """``schema`` with the types of ``relaxed`` at their places (top level or one struct in)."""
    if not relaxed:
        return schema
    fields = []
    for top in schema:
        kind: Any = top.type
        if (top.name,) in relaxed:
            kind = relaxed[(top.name,)]
        elif pa.types.is_struct(kind):
            kind = pa.struct([c.with_type(relaxed.get((top.name, c.name), c.type)) for c in kind])
        fields.append(top.with_type(kind))
    return pa.schema(fields)


def _restore(
    table: pa.Table, schema: pa.Schema, relaxed: Mapping[FieldPath, pa.DataType]
) -> pa.Table:
    """The relaxed columns of ``table`` converted to ``schema``'s types."""
    columns = []
    for top in schema:
        column: Any = table.column(top.name).combine_chunks()
        if (top.name,) in relaxed:
            column = _convert(column, top.type)
        elif pa.types.is_struct(top.type) and any(p[0] == top.name for p in relaxed):
            children = [
                _convert(column.field(c.name), c.type)
                if (top.name, c.name) in relaxed
                else column.field(c.name)
                for c in top.type
            ]
            column = pa.StructArray.from_arrays(
                children, fields=list(top.type), mask=pc.is_null(column)
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _convert(values: Any, kind: pa.DataType) -> pa.Array[Any]:
    """Values parsed as found, in ``kind`` as :func:`_column` would make them."""
    if pa.types.is_integer(values.type) and pa.types.is_string(kind):
        return cast("pa.Array[Any]", pc.cast(values, pa.string()))
    return _column(values.to_pylist(), kind)


def _input(data: bytes | memoryview) -> IO[bytes]:
    """Bytes as a file pyarrow reads without copying them."""
    return cast("IO[bytes]", pa.BufferReader(pa.py_buffer(data)))


def _table_of(records: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The records as a table of ``schema``, converting values of the wrong type."""
    columns = [_column([r.get(f.name) for r in records], f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _column(values: list[Any], kind: pa.DataType) -> pa.Array[Any]:
    if pa.types.is_struct(kind):
        children = [
            _column(
                [v.get(child.name) if isinstance(v, dict) else None for v in values], child.type
            )
            for child in kind
        ]
        present = pa.array([isinstance(v, dict) for v in values])
        return pa.StructArray.from_arrays(children, fields=list(kind), mask=pc.invert(present))
    if pa.types.is_floating(kind):
        return pa.array([float_of(v) for v in values], type=kind)
    if pa.types.is_string(kind):
        return pa.array(
            [None if v is None else v if isinstance(v, str) else str(v) for v in values], type=kind
        )
    if pa.types.is_list(kind):
        return pa.array(
            [[str(x) for x in v] if isinstance(v, list) else None for v in values], type=kind
        )
    if pa.types.is_boolean(kind):
        return pa.array([v if isinstance(v, bool) else None for v in values], type=kind)
    if pa.types.is_integer(kind):
        return pa.array(
            [v if isinstance(v, int) and not isinstance(v, bool) else None for v in values],
            type=kind,
        )
    return pa.array([None] * len(values), type=kind)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not tables:
        return schema.empty_table()
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables)
