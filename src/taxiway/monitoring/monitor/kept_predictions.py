"""The predictions kept for the outcomes' join: ``request_id``, ``unit``, ``ts`` and the score of
each answer of the monitored version, appended from the log's new bytes on every run (an
outcome may come days after its prediction)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from taxiway.monitoring.monitor.inputs import MonitorInputs
from taxiway.monitoring.segments import LogCursor, read_new

__all__ = ["LOG_PATTERN", "keep_predictions", "load_predictions"]

LOG_PATTERN = "predictions-*.jsonl"
"""The prediction log's file names (and the outcomes log's: the same writer)."""
_KEPT_FIELDS: list[pa.Field[Any]] = [
    pa.field("request_id", pa.string()),
    pa.field("unit", pa.string()),
    pa.field("ts", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("prediction", pa.float64()),
]
_KEPT = pa.schema(_KEPT_FIELDS)
_KEPT_KEYS = ("request_id", "unit", "ts", "prediction")
"""The columns of each prediction kept for the outcomes' join."""


def keep_predictions(inputs: MonitorInputs) -> None:
    """Append the new predictions of the version (id, unit, time, score) to the folder's
    ``predictions.jsonl``: outcomes join to them, however late they come."""
    folder = inputs.state_folder
    folder.mkdir(parents=True, exist_ok=True)
    cursor_path = folder / "predictions.cursor.json"
    cursor = (
        LogCursor.from_dict(orjson.loads(cursor_path.read_bytes()))
        if cursor_path.exists()
        else LogCursor()
    )
    table, cursor = read_new(inputs.log_folder, LOG_PATTERN, cursor, schema=_KEPT)
    kept = [
        r
        for r in table.to_pylist()
        if r.get("model_version") == inputs.version and r.get("prediction") is not None
    ]
    if kept:
        lines = b"".join(orjson.dumps({k: r[k] for k in _KEPT_KEYS}) + b"\n" for r in kept)
        with (folder / "predictions.jsonl").open("a+b") as out:
            if out.tell():  # after a line torn by a crash, start a new one
                out.seek(-1, 2)
                if out.read(1) != b"\n":
                    lines = b"\n" + lines
            out.write(lines)
    scratch = cursor_path.with_suffix(".tmp")
    scratch.write_bytes(orjson.dumps(cursor.to_dict()))
    scratch.replace(cursor_path)


def load_predictions(folder: Path) -> dict[str, np.ndarray]:
    """The kept predictions as columns (``request_id``, ``unit``, ``ts``, ``prediction``)."""
    path = folder / "predictions.jsonl"
    schema = pa.schema([f for f in _KEPT_FIELDS if f.name in _KEPT_KEYS])
    try:
        table = pa_json.read_json(path, parse_options=pa_json.ParseOptions(explicit_schema=schema))
    except FileNotFoundError:
        table = schema.empty_table()
    except pa.ArrowInvalid:  # a line torn by a crash while appending: read line by line
        records = []
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if isinstance(record, dict):
                    records.append({key: record.get(key) for key in _KEPT_KEYS})
        table = pa.Table.from_pylist(records, schema=schema)
    columns = {
        key: np.asarray(table.column(key).to_pylist(), dtype=object)
        for key in ("request_id", "unit", "ts")
    }
    prediction = table.column("prediction").to_numpy(zero_copy_only=False)  # null: NaN
    columns["prediction"] = np.asarray(prediction, dtype=np.float64)
    return columns
