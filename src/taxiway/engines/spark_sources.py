"""Sources Spark reads where they live: a Delta table's files, and PostgreSQL over JDBC.

**Delta.** No Delta jar is loaded (nothing is downloaded at run time): delta-rs resolves the
version's active Parquet files from the table's log, and Spark reads exactly those files. That
is the version's rows only when the files alone hold them, so a table whose protocol asks the
reader for more is refused with what to do: deletion vectors (rows deleted without rewriting a
file), column mapping (the files' column names are not the table's) and type widening.
Partition columns live in the log and the folder names, not the files: Spark takes them from
the ``column=value`` folders (no type guessed: each is cast to the table's type).

**PostgreSQL.** Spark reads the table or query over JDBC with the driver jar Debian ships
(``libpostgresql-jdbc-java``: :data:`POSTGRES_JAR`), added to the session's ``spark.jars``. The
URL comes from the spec's secret reference (``${DB_URL}`` or ``${file:...}``) at read time; its
password is handed to the driver as a property, never put in the JDBC URL, a message or a log.
Times read as DuckDB reads them: ``timestamp`` as a time without zone (``TIMESTAMP_NTZ``),
``timestamptz`` as an instant.

>>> jdbc_url({"host": "db", "port": "5433", "dbname": "shop", "sslmode": "require"})
'jdbc:postgresql://db:5433/shop?sslmode=require'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from taxiway.errors import SourceError
from taxiway.spec.models import PostgresSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, DataFrameReader, SparkSession

__all__ = [
    "POSTGRES_JAR",
    "delta_frame",
    "jdbc_url",
    "postgres_frame",
    "refuse_unreadable",
    "source_jars",
]

POSTGRES_JAR = Path(os.environ.get("TAXIWAY_POSTGRES_JDBC_JAR", "/usr/share/java/postgresql.jar"))
"""PostgreSQL's JDBC driver (Debian: ``apt-get install libpostgresql-jdbc-java``);
``TAXIWAY_POSTGRES_JDBC_JAR`` names another copy."""

# reader features whose rows plain Parquet reading gets wrong, and what each means
_UNREADABLE = {
    "deletionVectors": "deletion vectors (rows deleted without rewriting their file)",
    "columnMapping": "column mapping (the files' column names are not the table's)",
    "typeWidening": "type widening (older files hold narrower types than the table)",
    "typeWidening-preview": "type widening (older files hold narrower types than the table)",
}
# libpq parameters that are where to connect, not JDBC properties
_ADDRESS = {"host", "hostaddr", "port", "dbname", "user", "password", "connect_timeout"}


def source_jars() -> list[str]:
    """The jars a session needs to read sources: the PostgreSQL driver, when installed."""
    return [str(POSTGRES_JAR)] if POSTGRES_JAR.is_file() else []


def delta_frame(session: SparkSession, name: str, path: str, version: int | None) -> DataFrame:
    """Version ``version`` (None: the newest) of the Delta table at ``path`` as a DataFrame."""
    from deltalake import DeltaTable

    try:
        table = DeltaTable(path, version=version)
    except Exception as error:  # delta-rs: TableNotFoundError, DeltaError, ...
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SourceError(
            f"source `{name}`: no Delta table at {path} (version {version or 'newest'}): {first}",
            fix="check `path:` (the folder holding _delta_log) and `version:`",
        ) from None
    refuse_unreadable(name, path, table)
    from pyspark.sql import functions
    from pyspark.sql.types import StructType

    # a Delta schema's JSON is Spark's own schema JSON
    schema = StructType.fromJson(json.loads(table.schema().to_json()))
    files = [str(uri) for uri in table.file_uris()]
    if not files:  # a version with no row: an empty frame of the table's columns
        return session.createDataFrame([], schema)
    partitions = set(table.metadata().partition_columns)
    if not partitions:
        return (
            session.read.option("mergeSchema", "true")
            .parquet(*files)
            .select(*[functions.col(f"`{f.name}`") for f in schema.fields])
        )
    # the values are in the folders' names (`day=2025-01-01`): read as text, cast to the
    # table's type, never guessed (`007` stays `007` in a text column)
    key = "spark.sql.sources.partitionColumnTypeInference.enabled"
    before = session.conf.get(key, "true") or "true"
    session.conf.set(key, "false")
    try:
        frame = session.read.option("basePath", table.table_uri).parquet(*files)
    finally:
        session.conf.set(key, before)
    return frame.select(
        *[
            functions.col(f"`{f.name}`").cast(f.dataType).alias(f.name)
            if f.name in partitions
            else functions.col(f"`{f.name}`")
            for f in schema.fields
        ]
    )


def refuse_unreadable(name: str, path: str, table: Any) -> None:
    """Raise :class:`SourceError` when the files of ``table`` (a delta-rs ``DeltaTable``) alone
    do not hold its rows: deletion vectors, column mapping, type widening, a newer reader.

    DuckDB's reader (:mod:`taxiway.data.sources.delta`) asks too: delta-rs's Arrow dataset
    reads a column-mapped table's columns as nulls, without an error.
    """
    protocol = table.protocol()
    features = set(protocol.reader_features or [])
    mapping = (table.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if mapping != "none":
        features.add("columnMapping")
    found = [_UNREADABLE[f] for f in sorted(features) if f in _UNREADABLE]
    if protocol.min_reader_version > 3 or found:
        what = "; ".join(found) or f"reader version {protocol.min_reader_version}"
        raise SourceError(
            f"source `{name}`: the Delta table {path} needs more than its Parquet files to be "
            f"read right, and taxiway reads only those: {what}",
            fix="rewrite the table without it into a new one (Delta's `REORG TABLE ... APPLY "
            "(PURGE)` purges deletion vectors; a `CREATE TABLE ... AS SELECT` without "
            "`delta.columnMapping.mode` drops column mapping), then point `path:` at it",
        )


def jdbc_url(params: dict[str, Any]) -> str:
    """The JDBC URL of libpq parameters ``params`` (no user, no password: they are properties)."""
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    database = quote(str(params.get("dbname") or params.get("user") or "postgres"))
    extra = {k: str(v) for k, v in sorted(params.items()) if k not in _ADDRESS and v is not None}
    query = f"?{urlencode(extra)}" if extra else ""
    return f"jdbc:postgresql://{host}:{port}/{database}{query}"


def postgres_frame(session: SparkSession, name: str, spec: PostgresSource) -> DataFrame:
    """Source ``name``'s table or query, read by Spark over JDBC."""
    if not POSTGRES_JAR.is_file():
        raise SourceError(
            f"source `{name}`: Spark reads PostgreSQL with the JDBC driver, not found at "
            f"{POSTGRES_JAR}",
            fix="apt-get install libpostgresql-jdbc-java (or set TAXIWAY_POSTGRES_JDBC_JAR to "
            "postgresql.jar), then start the build again",
        )
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ModuleNotFoundError:
        raise SourceError(
            f"source `{name}` is a postgres source but its driver is missing (psycopg)",
            fix="pip install 'taxiway[postgres]'",
        ) from None
    try:
        params = conninfo_to_dict(spec.url.reveal())
    except SourceError as error:
        raise SourceError(f"source `{name}`: {error.message}", fix=error.fix) from None
    except Exception:  # psycopg.ProgrammingError: not a URL; its text may hold the password
        raise SourceError(
            f"source `{name}`: {', '.join(spec.url.names)} does not hold a PostgreSQL URL",
            fix="set it to a URL such as postgresql://user@host:5432/dbname",
        ) from None
    relation = spec.table
    if relation is None:
        relation = f"({(spec.query or '').strip().rstrip(';')}) AS taxiway_query"
    reader = (
        session.read.format("jdbc")
        .option("url", jdbc_url(params))
        .option("driver", "org.postgresql.Driver")
        .option("dbtable", relation)
        .option("fetchsize", str(spec.batch_rows))
        .option("preferTimestampNTZ", "true")
        .option("loginTimeout", str(int(spec.connect_timeout_s)))
    )
    if params.get("user"):
        reader = reader.option("user", str(params["user"]))
    password = str(params.get("password") or "")
    if password:
        reader = reader.option("password", password)
    try:
        frame = reader.load()  # one partition; Spark reads only the columns' types here
        split = _split(session, name, spec, reader, relation, frame)
        return frame if split is None else split.load()
    except SourceError:
        raise
    except Exception as error:  # Py4J wraps the driver's PSQLException
        raise _jdbc_error(name, spec, params, str(error), password) from None


def _split(
    session: SparkSession,
    name: str,
    spec: PostgresSource,
    reader: DataFrameReader,
    relation: str,
    frame: DataFrame,
) -> DataFrameReader | None:
    """``reader`` split into ranges of the source's ``partition_column`` (default its
    ``timestamp``), read in parallel, or None to read in one partition: no column to split
    on, ``partitions: 1``, no row, NaN or infinity at a bound, or a default column that is
    not numeric, date or time.

    The bounds are the column's min and max, read first; rows outside them and nulls are read
    all the same (the first and last ranges are open), so the rows are those of one read.
    """
    column = spec.partition_column or spec.timestamp
    wanted = spec.partitions or session.sparkContext.defaultParallelism
    if column is None or wanted <= 1:
        return None
    found = {f.name.lower(): f for f in frame.schema.fields}.get(column.lower())
    kind = found.dataType.typeName() if found is not None else None
    if found is None or kind not in _SPLITTABLE:
        if spec.partition_column is None:
            return None  # the timestamp is text (or absent: the plan says so): one read
        shown = f"is {found.dataType.simpleString()}" if found else "is not a column of it"
        columns = ", ".join(f"{f.name} ({f.dataType.simpleString()})" for f in frame.schema)
        raise SourceError(
            f"source `{name}`: `partition_column: {column}` {shown}; Spark splits a JDBC "
            "read on a numeric, date or timestamp column",
            fix=f"name one in `partition_column:` (the source's columns: {columns}), or "
            "remove it (and `partitions:`) to read in one partition",
        )
    quoted = '"' + found.name.replace('"', '""') + '"'
    timed = kind.startswith("timestamp")
    lo, hi = (
        (f"extract(epoch FROM min({quoted}))", f"extract(epoch FROM max({quoted}))")
        if timed
        else (f"min({quoted})", f"max({quoted})")
    )
    bounds = (
        reader.option(
            "dbtable", f"(SELECT {lo} AS lo, {hi} AS hi FROM {relation}) AS taxiway_bounds"
        )
        .load()
        .collect()[0]
    )
    reader.option("dbtable", relation)  # the reader is one object: back to the source's rows
    if bounds["lo"] is None:  # no row (or only nulls): nothing to split
        return None
    if kind != "date" and not all(math.isfinite(float(b)) for b in (bounds["lo"], bounds["hi"])):
        return None  # NaN or infinity among the values: no ranges to draw, one read
    return (
        reader.option("partitionColumn", found.name)
        .option("lowerBound", _bound(bounds["lo"], kind, math.floor))
        .option("upperBound", _bound(bounds["hi"], kind, math.ceil))
        .option("numPartitions", str(wanted))
    )


# Spark's type names of the columns it splits a JDBC read on
_SPLITTABLE = {
    "byte", "short", "integer", "long", "float", "double", "decimal",
    "date", "timestamp", "timestamp_ntz",
}  # fmt: skip
_LONG = 2**63 - 1


def _bound(value: Any, kind: str, whole: Callable[[Any], int]) -> str:
    """A min or max as Spark's JDBC reader takes it: a whole number (numeric columns, clamped
    to a long), a date, or a time in UTC (times arrive as epoch seconds).

    >>> _bound(2.5, "double", math.ceil), _bound(1736164800.25, "timestamp", math.floor)
    ('3', '2025-01-06 12:00:00.250000')
    """
    if kind.startswith("timestamp"):
        moment = datetime.fromtimestamp(float(value), UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    if kind == "date":
        return str(value.isoformat())
    return str(max(-_LONG, min(_LONG, whole(value))))


def _jdbc_error(
    name: str, spec: PostgresSource, params: dict[str, Any], text: str, password: str
) -> SourceError:
    """The driver's reason (``PSQLException: ...``) on one line, the password scrubbed."""
    lines = [line for line in text.splitlines() if "PSQLException" in line]
    reason = lines[0].split("PSQLException:", 1)[1].strip() if lines else text.splitlines()[0]
    if password:
        reason = reason.replace(password, "***")
    where = f"{params.get('host') or 'localhost'}:{params.get('port') or '5432'}"
    if "Connection" in reason and ("refused" in reason or "attempt failed" in reason):
        fix = f"start PostgreSQL at {where}, or fix {', '.join(spec.url.names)}"
    elif "authentication failed" in reason or "password" in reason:
        fix = f"check the user and password in {', '.join(spec.url.names)}"
    elif "does not exist" in reason:
        fix = "check `table:` / `query:` in the spec against the database"
    else:
        fix = "run the build with `engine: duckdb` to see the source's own error"
    return SourceError(
        f"source `{name}`: Spark cannot read PostgreSQL at {where}: {reason}", fix=fix
    )
