"""The prediction log's windows profiled on Spark: one set of windows per partition, merged on
the driver.

Profiles are Python objects (fine bins, KLL and frequent-items sketches), not SQL, so Spark
runs :func:`taxiway.monitoring.windows.profile_tables` itself on each partition's Arrow
batches (``mapInArrow``); each partition hands back its windows as JSON and the driver merges
those of one start (:meth:`Window.merge`). Counts, fine bins, missing, minutes and labels
(below the category cap) merge exactly, so they equal the Python path's; the sums differ only
by float rounding and the KLL quantiles stay within the sketch's rank error (about 1.3%).

Unlike :class:`~taxiway.monitoring.windows.WindowStore`, this reads the whole log on every call
(no cursor) and stores nothing: it is for logs too large for one machine, or a backfill.
The executors import taxiway: on ``local[*]`` they are the driver's Python; on a cluster,
install taxiway on every worker or ship it with ``spark.submit.pyFiles``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from taxiway.errors import MonitoringError
from taxiway.monitoring.reference import load_reference
from taxiway.monitoring.windows import Window, profile_tables, window_schema

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark_windows"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNTIMED = -1  # the start of the row that carries a partition's count of untimed records


def spark_windows(
    session: SparkSession,
    paths: Sequence[Path],
    reference: Mapping[str, Any],
    *,
    window: timedelta,
    budget_ms: float | None,
    version: int | None = None,
) -> tuple[list[Window], int]:
    """The windows of the log files ``paths`` (JSON lines) against the stored ``reference``
    (``build_reference``'s dict), oldest first, and the count of records without a readable
    ``ts``: what :func:`~taxiway.monitoring.windows.profile_tables` gives for the same records.

    Lines that are not JSON objects (a line cut short by a crash) are dropped, as the Python
    reader skips them.
    """
    schema = _read_schema(window_schema(load_reference(reference)))
    frame = (
        session.read.schema(_spark_type(schema))
        .option("mode", "DROPMALFORMED")
        .json([str(path) for path in paths])
    )
    profile = functools.partial(
        _profile_partition,
        reference=dict(reference),
        schema=schema,
        window_us=window // timedelta(microseconds=1),
        budget_ms=budget_ms,
        version=version,
    )
    with warnings.catch_warnings():
        # mapInArrow checks pandas and warns that PySpark 4 is not tested with pandas 3;
        # nothing here goes through pandas (Arrow batches in, Arrow batches out)
        warnings.filterwarnings("ignore", "PySpark does not yet", FutureWarning)
        profiled = frame.mapInArrow(profile, "start long, body binary")
    rows = profiled.collect()
    untimed = 0
    merged: dict[int, Window] = {}
    for start, body in rows:
        if start == _UNTIMED:
            untimed += int(orjson.loads(bytes(body)))
            continue
        found = Window.from_dict(orjson.loads(bytes(body)))
        merged[start] = found if start not in merged else merged[start].merge(found)
    return [merged[start] for start in sorted(merged)], untimed


def _profile_partition(
    batches: Iterator[pa.RecordBatch],
    *,
    reference: dict[str, Any],
    schema: pa.Schema,
    window_us: int,
    budget_ms: float | None,
    version: int | None,
) -> Iterator[pa.RecordBatch]:
    """On an executor: one partition's windows, each as ``(start in us, JSON)``."""
    tables = (pa.Table.from_batches([batch]).cast(schema) for batch in batches)
    windows, untimed = profile_tables(
        tables,
        load_reference(reference),
        window=timedelta(microseconds=window_us),
        budget_ms=budget_ms,
        version=version,
    )
    starts = [_UNTIMED] + [(w.start - _EPOCH) // timedelta(microseconds=1) for w in windows]
    bodies = [orjson.dumps(untimed)] + [orjson.dumps(w.to_dict()) for w in windows]
    yield pa.RecordBatch.from_arrays(
        [pa.array(starts, pa.int64()), pa.array(bodies, pa.binary())], names=["start", "body"]
    )


def _read_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the numeric features read as text: the profile then parses them, so a
    value sent as text that is not a number counts as invalid, as the Python reader counts it
    (Spark's JSON reader would make it null)."""
    fields = []
    for field in schema:
        if field.name == "features":
            features = [
                pa.field(f.name, pa.string()) if pa.types.is_floating(f.type) else f
                for f in field.type
            ]
            field = pa.field("features", pa.struct(features))
        fields.append(field)
    return pa.schema(fields)


def _spark_type(schema: pa.Schema) -> Any:
    """The Spark struct for the log's Arrow schema (the few types the log has)."""
    from pyspark.sql import types as T

    def convert(kind: pa.DataType) -> Any:
        if pa.types.is_string(kind):
            return T.StringType()
        if pa.types.is_int64(kind):
            return T.LongType()
        if pa.types.is_floating(kind):
            return T.DoubleType()
        if pa.types.is_boolean(kind):
            return T.BooleanType()
        if pa.types.is_list(kind):
            return T.ArrayType(convert(kind.value_type))
        if pa.types.is_struct(kind):
            return T.StructType([T.StructField(f.name, convert(f.type)) for f in kind])
        raise MonitoringError(
            f"the prediction log's schema has a {kind} column Spark is not told how to read",
            fix="report this: taxiway.monitoring.spark_windows reads the log's types only",
        )

    return T.StructType([T.StructField(f.name, convert(f.type)) for f in schema])
