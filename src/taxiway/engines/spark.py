"""The Apache Spark engine: the point-in-time plan's SQL, transpiled, run through PySpark.

PySpark is an extra (``pip install 'taxiway[spark]'``) and needs Java; both are imported or
started only when a spec says ``engine: spark``. Every query the plan writes in DuckDB's
dialect goes through :func:`taxiway.engines.transpile.to_spark`; each stored table is a cached
query, computed with the first statement that reads it (the final write, mostly). Its row
numbers are the same however often it is recomputed: the plan numbers rows in an order that
ties only rows equal in every column.
Times are UTC (``spark.sql.session.timeZone``) and written as Parquet microseconds without a
zone, as DuckDB writes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxiway.engines.spark_sources import delta_frame, postgres_frame, source_jars
from taxiway.engines.sql import EngineError
from taxiway.engines.transpile import duckdb_type, to_spark
from taxiway.errors import MissingExtraError, TaxiwayError
from taxiway.spec.models import PostgresSource

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_MASTER", "LOSS_TIMEOUT", "SparkEngine", "spark_session"]

DEFAULT_MASTER = "local[2]"

# how long a build on a cluster waits with no executor before it stops and says so
LOSS_TIMEOUT = "spark.taxiway.executorLossTimeout"

# settings that make Spark's answers DuckDB's: UTC times, microsecond Parquet timestamps
_FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
# defaults a spec's `spark.conf` may override (few partitions suit one machine's tests)
_DEFAULT_CONF = {"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "1g"}
_LOOPBACK = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}


def spark_session(
    master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The process's Spark session (started on first use with ``master`` and ``conf``).

    Raises :class:`MissingExtraError` without PySpark and :class:`EngineError` when the JVM
    does not start (no Java, or a master that does not answer).
    """
    try:
        with warnings.catch_warnings():
            # PySpark 4 warns on import that it is not tested with pandas 3; taxiway hands
            # Spark no pandas objects (Parquet in, Parquet out)
            warnings.filterwarnings("ignore", "PySpark does not yet", FutureWarning)
            from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        raise MissingExtraError("spark", needed_by="engine: spark", missing=["pyspark"]) from None
    builder = SparkSession.builder.master(master).appName("taxiway")
    settings = {**_DEFAULT_CONF, **(conf or {}), **_FIXED_CONF}
    jars = [j for j in settings.get("spark.jars", "").split(",") if j] + source_jars()
    if jars:  # the sources' drivers (PostgreSQL's JDBC jar) beside any the spec names
        settings["spark.jars"] = ",".join(dict.fromkeys(jars))
    if master.startswith("local") or _on_loopback(master):  # nothing listens beyond loopback
        settings = {**_LOOPBACK, **settings}
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if master.startswith("local") or _on_loopback(master):
        # Python run on Spark (drift profiles, Redis writes) runs in this Python, taxiway and
        # its extras included; a remote cluster's workers run their own (spark.pyspark.python)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in settings.items():
        builder = builder.config(key, value)
    # taxiway reports a failed query itself, as what failed and what to do
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).disabled = True
    try:
        with warnings.catch_warnings():  # the same pandas warning, from pyspark.testing
            warnings.filterwarnings("ignore", "PySpark does not yet", FutureWarning)
            session = builder.getOrCreate()
    except Exception as error:  # the JVM's failures arrive as plain exceptions
        raise _not_started(master, error) from None
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEngine:
    """Runs the plan on ``session``; ``temp`` holds what it writes before moving it.

    ``progress`` hears, about every second while the training set is written (the job that
    computes it), the Spark stages and tasks done out of those its jobs have
    (``writing training.parquet: stages 3/7, tasks 40/58``).
    """

    portable = True

    def __init__(
        self, session: SparkSession, temp: Path, *, progress: Callable[[str], None] | None = None
    ) -> None:
        self.session = session
        self.temp = temp
        self.progress = progress
        self._tables: dict[str, Any] = {}

    def register_parquet(self, name: str, paths: list[str]) -> None:
        """Expose Parquet files as table ``name`` (read by Spark where they lie)."""
        with self._reported(f"reading {', '.join(paths)}"):
            # files of one source may differ in columns: read their union, as DuckDB does
            frame = self.session.read.option("mergeSchema", "true").parquet(*paths)
            frame.createOrReplaceTempView(name)

    def register_delta(self, name: str, source: str, path: str, version: int | None) -> None:
        """Expose version ``version`` of the Delta table at ``path`` (source ``source``) as
        ``name``: its active Parquet files, read by Spark (:mod:`.spark_sources`)."""
        with self._reported(f"reading the Delta table {path}"):
            delta_frame(self.session, source, path, version).createOrReplaceTempView(name)

    def register_postgres(self, name: str, source: str, spec: PostgresSource) -> None:
        """Expose PostgreSQL source ``source`` as ``name``, read by Spark over JDBC."""
        with self._reported(f"reading source `{source}` over JDBC"):
            postgres_frame(self.session, source, spec).createOrReplaceTempView(name)

    def create_table(self, name: str, sql: str) -> None:
        """Keep ``sql`` as ``name``: checked now, computed once when first read, then cached.

        Spark analyses the query here (a wrong column fails on this statement), but runs it
        with the first statement that reads it: one job per build instead of one per table.
        """
        with self._reported(f"computing {name}"):
            frame = self.session.sql(to_spark(sql)).cache()
            frame.createOrReplaceTempView(name)
            self._tables[name] = frame

    def create_view(self, name: str, sql: str) -> None:
        """Keep ``sql`` as ``name``, recomputed by each statement that reads it (not cached)."""
        with self._reported(f"computing {name}"):
            self.session.sql(to_spark(sql)).createOrReplaceTempView(name)

    def drop_table(self, name: str) -> None:
        """Forget ``name``."""
        self.session.catalog.dropTempView(name)
        frame = self._tables.pop(name, None)
        if frame is not None:
            frame.unpersist()

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type in DuckDB's spelling."""
        with self._reported(f"reading the columns of {table}"):
            schema = self.session.table(table).schema
        return {f.name: duckdb_type(f.dataType.simpleString()) for f in schema.fields}

    def fetch_one(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of ``sql``."""
        with self._reported("a query", told="computing"):
            rows = self.session.sql(to_spark(sql)).take(1)
        return tuple(rows[0]) if rows else None

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Every row of ``sql``, collected to the driver (a few: samples)."""
        with self._reported("a query", told="computing"):
            return [row.asDict() for row in self.session.sql(to_spark(sql)).collect()]

    def write_parquet(self, sql: str, out: Path) -> int:
        """Write the rows of ``sql``, in their order, as one Parquet file ``out``."""
        import pyarrow.parquet as pq

        folder = self.temp / f"write-{uuid.uuid4().hex}"
        with self._reported(f"writing {out}", told=f"writing {out.name}"):
            frame = self.session.sql(to_spark(sql)).coalesce(1)
            frame.write.option("compression", "zstd").parquet(str(folder))
        parts = sorted(folder.glob("part-*.parquet"))
        if len(parts) != 1:  # an empty result writes no part in some versions: none to move
            raise EngineError(
                f"Spark wrote {len(parts)} files for {out}, expected one",
                fix="report this as a bug in taxiway",
            )
        shutil.move(parts[0], out)
        shutil.rmtree(folder, ignore_errors=True)
        return int(pq.read_metadata(out).num_rows)

    def batches(self, sql: str, size: int) -> Iterator[pa.RecordBatch]:
        """Written as one Parquet file in ``temp``, then read back ``size`` rows at a time."""
        import pyarrow.parquet as pq

        out = self.temp / f"batches-{uuid.uuid4().hex}.parquet"
        self.write_parquet(sql, out)
        try:
            yield from pq.ParquetFile(out).iter_batches(size)
        finally:
            out.unlink(missing_ok=True)

    def each_partition(
        self,
        sql: str,
        func: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
        schema: str,
        *,
        by: list[str],
        what: str,
    ) -> list[dict[str, Any]]:
        """Run ``func`` on the executors over each partition of ``sql``'s rows (its Arrow
        batches, Spark's ``mapInArrow``) and collect the rows it yields, of ``schema`` (a Spark
        DDL string): a summary per partition, never the rows themselves.

        The rows are spread by the hash of the columns ``by`` over ``spark.default.parallelism``
        partitions (the executors' cores): one task per core, whatever partitioning the query
        ended with (a small result may end in one). ``func`` is pickled by reference to its
        module: the executors must import it (taxiway installed on every worker; ``local[*]``
        runs them in this Python). ``what`` names the work in progress reports and errors.
        """
        from pyspark.sql import functions

        with self._reported(what, told=what):
            frame = self.session.sql(to_spark(sql))
            spread = frame.repartition(
                self.session.sparkContext.defaultParallelism,
                *[functions.col(f"`{column}`") for column in by],
            )
            with warnings.catch_warnings():
                # mapInArrow checks pandas and warns that PySpark 4 is not tested with
                # pandas 3; nothing here goes through pandas (Arrow batches in and out)
                warnings.filterwarnings("ignore", "PySpark does not yet", FutureWarning)
                mapped = spread.mapInArrow(func, schema)
            return [row.asDict() for row in mapped.collect()]

    def close(self) -> None:
        """Forget every table this engine stored (the session stays, for the next build)."""
        for name in list(self._tables):
            self.drop_table(name)

    @contextmanager
    def _watched(self, what: str, *, told: str | None) -> Iterator[None]:
        """Report the stages of the jobs running meanwhile to ``progress``; on a cluster, stop
        the jobs when no executor has been left for ``spark.taxiway.executorLossTimeout``
        (Spark itself would wait for one forever) and say so."""
        context = self.session.sparkContext
        on_cluster = not str(context.master).startswith("local")
        say = self.progress if told else None
        label = told or what
        if say is None and not on_cluster:
            yield
            return
        lost_after = _seconds(context.getConf().get(LOSS_TIMEOUT, "60s") or "60s")
        stop, lost = threading.Event(), threading.Event()
        tracker = context.statusTracker()

        def watch() -> None:
            without = 0.0
            while not stop.wait(1.0):
                with contextlib.suppress(Exception):  # a finished job has nothing to say
                    if say is not None:
                        say(f"{label}: {stage_summary(tracker)}")
                    without = 0.0 if not on_cluster or executors(context) else without + 1.0
                    if without >= lost_after and not lost.is_set():
                        lost.set()
                        context.cancelAllJobs()

        watcher = threading.Thread(target=watch, name="taxiway-spark-progress", daemon=True)
        watcher.start()
        try:
            yield
        except Exception:
            if lost.is_set():
                raise EngineError(
                    f"Spark stopped {what}: no executor left on {context.master} for "
                    f"{lost_after:.0f}s (its workers or master went away, or none can grant "
                    "`spark.executor.memory`)",
                    fix="check that the master and its workers run (their web UI lists them), "
                    "give executors no more memory than a worker offers, then build again; "
                    f"`{LOSS_TIMEOUT}` in `spark.conf` sets how long to wait",
                ) from None
            raise
        finally:
            stop.set()
            watcher.join()

    @contextmanager
    def _reported(self, what: str, *, told: str | None = None) -> Iterator[None]:
        """Spark's failures as what failed and what to do; progress, as ``told``, if given."""
        try:
            with self._watched(what, told=told):
                yield
        except TaxiwayError:  # ours already says what to do
            raise
        except Exception as error:  # PySpark and Py4J errors share no base class with ours
            raise EngineError(
                f"Spark failed {what}: {_first_line(error)}",
                fix=_fix_for(error),
            ) from None


def executors(context: Any) -> int:
    """Executors the application holds now (the driver's own block manager not counted)."""
    return max(int(context._jsc.sc().getExecutorMemoryStatus().size()) - 1, 0)


def _seconds(text: str) -> float:
    """``90s``, ``2min``, ``1.5`` (seconds) as seconds.

    >>> _seconds("90s"), _seconds("2min"), _seconds("1.5")
    (90.0, 120.0, 1.5)
    """
    text = text.strip().lower()
    for unit, factor in (("min", 60.0), ("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * factor
    return float(text)


def stage_summary(tracker: Any) -> str:
    """Stages and tasks done out of those of the running jobs (Spark's status tracker)."""
    stages = [
        stage
        for job in tracker.getActiveJobsIds()
        if (info := tracker.getJobInfo(job)) is not None
        for stage in info.stageIds
    ]
    infos = [tracker.getStageInfo(stage) for stage in stages]
    done = sum(
        1 for i in infos if i is not None and i.numTasks and i.numCompletedTasks >= i.numTasks
    )
    tasks = sum(i.numCompletedTasks for i in infos if i is not None)
    total = sum(i.numTasks for i in infos if i is not None)
    return f"stages {done}/{len(stages)}, tasks {tasks}/{total}"


def _not_started(master: str, error: BaseException) -> EngineError:
    """Why the session did not start, and what to do: no Java, or no master there."""
    java_home = os.environ.get("JAVA_HOME")
    has_java = shutil.which("java") is not None or (
        java_home is not None and os.path.exists(os.path.join(java_home, "bin", "java"))
    )
    if not has_java:
        return EngineError(
            "Spark cannot start: no Java runtime (no `java` on PATH, no JAVA_HOME)",
            fix="install one: `apt-get install openjdk-17-jre-headless` (PySpark 4 runs on "
            "Java 17 or 21)",
        )
    if not master.startswith("local"):
        return EngineError(
            f"Spark cannot reach its master {master}: {_first_line(error)}",
            fix="start the cluster (sbin/start-master.sh, start-worker.sh) or fix `spark.master` "
            "/ --master; `local[2]` runs Spark in this process",
        )
    return EngineError(
        f"Spark did not start ({master}): {_first_line(error)}",
        fix="check JAVA_HOME (Java 17 or 21) and `spark.conf` in the spec",
    )


def _on_loopback(master: str) -> bool:
    """Whether ``master`` is a cluster on this machine's loopback (``spark://127.0.0.1:...``).

    >>> _on_loopback("spark://127.0.0.1:7077"), _on_loopback("spark://spark-master:7077")
    (True, False)
    """
    host = master.removeprefix("spark://").rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost")


def _first_line(error: BaseException) -> str:
    """The error's first line; for an exception in the executors' Python, its last line (the
    exception itself, below the traceback).

    >>> _first_line(RuntimeError("An exception was thrown from the Python worker: Traceback"
    ...     "\\n  File x\\nModuleNotFoundError: No module named 'ruamel'\\n SQLSTATE: 38000"))
    "the executors' Python raised ModuleNotFoundError: No module named 'ruamel'"
    """
    text = str(error).strip()
    if _PYTHON_WORKER in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        raised = [line for line in lines if _RAISED.match(line)]
        if raised:
            return f"the executors' Python raised {raised[-1]}"
    return text.splitlines()[0] if text else type(error).__name__


_PYTHON_WORKER = "exception was thrown from the Python worker"
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def _fix_for(error: BaseException) -> str:
    text = str(error)
    if _PYTHON_WORKER in text and "ModuleNotFoundError" in text:
        return (
            "install taxiway (the same version, with the extras the spec uses) in the Python "
            "the executors run on every worker, or point `spark.pyspark.python` in `spark.conf` "
            "at one that has it"
        )
    if "OutOfMemory" in text or "Java heap space" in text:
        return "give Spark more memory: `spark: {conf: {spark.driver.memory: 4g}}` in the spec"
    if "Connection refused" in text or "Failed to connect" in text:
        return "check that the Spark master (`spark.master` in the spec) is running"
    if "PATH_NOT_FOUND" in text or "does not exist" in text:
        return "check the source paths: every Spark worker must be able to read them"
    return "check the spec's columns and types against the data; run with engine: duckdb to compare"
