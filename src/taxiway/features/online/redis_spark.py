"""Materialization into Redis from Spark's executors: each partition writes its own keys.

With ``engine: spark`` and a Redis online store, a view's values are not collected to the
driver: Spark runs :func:`_write_partition` on every partition (``mapInArrow``), which turns
the partition's Arrow batches into store rows (:func:`~taxiway.features.online.rows.view_rows`,
the driver's own conversion) and writes them through a :class:`RedisStore` opened on the
executor (:meth:`RedisStore.write`: the same keys, the same JSON documents, merged with the
key's other views in pipelined chunks of 1,000 rows, each one ``WATCH``/``MGET``/``MULTI``
transaction). A partition hands back only ``(partition, written, error, fix)``; the driver
adds them up and fails the command, naming the partitions and why, if any could not write.
So a materialization larger than the driver's memory works on a cluster: the driver holds a
summary per partition.

Before the executors write, the driver checks the store's layout once (and migrates one of an
earlier taxiway version, as a driver-side write would). A failed partition leaves the keys it
and the other partitions wrote in place; the view's state is not saved, so the next
materialization recomputes it in full.

The executors import this module, :mod:`.rows`, :mod:`.redis` and redis-py: on ``local[*]`` and
a cluster on this machine they run this Python; on a real cluster install taxiway with its
``redis`` extra (the same version) on every worker. The task carries the store's URL, with its
password if it has one, to the executors.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from taxiway.errors import FeatureError, TaxiwayError
from taxiway.features.online.redis import RedisStore, RedisTarget
from taxiway.features.online.rows import view_rows

if TYPE_CHECKING:
    from taxiway.engines.spark import SparkEngine

__all__ = ["Written", "write_on_executors"]

SUMMARY = "partition int, written long, error string, fix string"


@dataclass(frozen=True)
class Written:
    """What the executors wrote for one view: rows in all, over ``partitions`` partitions."""

    rows: int
    partitions: int


def write_on_executors(
    engine: SparkEngine,
    store: RedisStore,
    entity: str,
    view: str,
    sql: str,
    keys: Sequence[str],
    names: Sequence[str],
    as_of: datetime,
) -> Written:
    """Write the rows of ``sql`` (the entity's ``keys``, the features ``names``, the event
    time) as view ``view`` of ``entity`` into ``store``, from Spark's executors.

    Raises :class:`FeatureError` naming each partition that could not write, its reason and
    the fix, after every partition has tried.
    """
    store.write(entity, [])  # the layout checked (an earlier one migrated) once, here
    write = functools.partial(
        _write_partition,
        target=store.target(),
        entity=entity,
        view=view,
        names=tuple(names),
        width=len(keys),
        as_of=as_of,
    )
    summaries = engine.each_partition(
        sql, write, SUMMARY, by=list(keys), what=f"writing view {view} to Redis from the executors"
    )
    written = sum(int(s["written"]) for s in summaries)
    failed = sorted((s for s in summaries if s["error"]), key=lambda s: int(s["partition"]))
    if failed:
        reasons = "; ".join(f"partition {s['partition']}: {s['error']}" for s in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        fixes = dict.fromkeys(str(s["fix"]) for s in failed if s["fix"])
        raise FeatureError(
            f"{len(failed)} of {len(summaries)} Spark partitions could not write view `{view}` "
            f"to Redis at {store.address} (prefix {store.prefix!r}): {reasons}{more}; "
            f"{written} rows were written by the others and stay",
            fix=f"{'; '.join(fixes) or 'check the executors can reach Redis'}, then "
            "materialize again (the view is recomputed in full)",
        )
    return Written(rows=written, partitions=len(summaries))


def _write_partition(
    batches: Iterator[pa.RecordBatch],
    *,
    target: RedisTarget,
    entity: str,
    view: str,
    names: tuple[str, ...],
    width: int,
    as_of: datetime,
) -> Iterator[pa.RecordBatch]:
    """On an executor: write one partition's rows; yield its one summary row."""
    from pyspark import TaskContext  # on the executor, inside a task

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else -1
    written, error, fix = 0, None, None
    store = target.open()
    try:
        for batch in batches:  # Spark's Arrow batches (10,000 rows by default)
            written += store.write(entity, view_rows(batch, view, names, width, as_of))
    except TaxiwayError as failure:  # the store's own: what failed, and the fix
        error, fix = failure.message, failure.fix
    except Exception as failure:  # anything else, named, rather than a task retried 4 times
        error = f"{type(failure).__name__}: {failure}"
    finally:
        store.close()
    yield pa.RecordBatch.from_arrays(
        [
            pa.array([partition], pa.int32()),
            pa.array([written], pa.int64()),
            pa.array([error], pa.string()),
            pa.array([fix], pa.string()),
        ],
        names=["partition", "written", "error", "fix"],
    )
