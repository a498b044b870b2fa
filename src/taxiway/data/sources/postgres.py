"""A table or query in PostgreSQL, streamed as Arrow record batches over ADBC (COPY binary).

Rows are never held in memory whole: ``batches`` yields batches of ``batch_rows`` as they
arrive, and ``register`` writes them to a Parquet file that DuckDB then scans.

ADBC hands a few PostgreSQL types over in a raw form, so the reader fixes them on the way:

- ``numeric(p, s)`` arrives as text and becomes ``decimal128(p, s)`` (``decimal256`` above 38
  digits); unconstrained ``numeric`` is read as ``float64``, as DuckDB's own scanner does;
- types without an Arrow counterpart (``inet``, ``timetz``, ``xml``...) are read as text;
- ``'infinity'`` dates and timestamps overflow in ADBC into values before 4713 BC; they are
  mapped back to the largest (smallest) value, which DuckDB reads as ``infinity``.
"""

from __future__ import annotations

import re
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc_pg
import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from taxiway.data.sources import _pg_errors
from taxiway.data.sources._pg_errors import Endpoint
from taxiway.engines.duckdb import quote_identifier, quote_literal
from taxiway.errors import SourceError
from taxiway.spec.models import PostgresSource
from taxiway.spec.secrets import redact

__all__ = ["PostgresReader", "split_table"]

_TABLE_PART = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')

# PostgreSQL's earliest date/timestamp is julian day 0 (4714-11-24 BC); ADBC shifts its
# ±infinity sentinels by the 1970/2000 epoch difference and they wrap around below that.
_MIN_TIMESTAMP_US = -2_440_588 * 86_400_000_000
_NEG_INFINITY_TIMESTAMP = -(2**63) + 946_684_800_000_000
_MIN_DATE = -2_440_588
_NEG_INFINITY_DATE = -(2**31) + 10_957
_CONNECTION_LOST = (
    "server closed the connection",
    "connection to server",
    "terminating connection",
)
_INTERVAL = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanoseconds", "<i8")])
_INTERVAL_STRUCT = pa.struct(
    [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
)


def split_table(text: str) -> tuple[str | None, str]:
    """``(schema, table)`` from ``schema.table`` or ``table``; ``"quoted"`` parts may hold dots.

    Names are taken as written (case-sensitive), the way ``\\dt`` in psql shows them.

    >>> split_table("public.orders"), split_table("orders"), split_table('"a.b"."My T"')
    (('public', 'orders'), (None, 'orders'), ('a.b', 'My T'))
    """
    parts: list[str] = []
    rest = text.strip()
    while True:
        match = _TABLE_PART.match(rest)
        if not match:
            raise ValueError(f"`table: {text}` is not `table` or `schema.table`")
        quoted, bare = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else bare.strip())
        rest = rest[match.end() :]
        if not rest:
            break
        if not rest.startswith("."):
            raise ValueError(f"`table: {text}` is not `table` or `schema.table`")
        rest = rest[1:]
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"`table: {text}` is not `table` or `schema.table`")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


@dataclass(frozen=True)
class _Column:
    """How one column is selected and what Arrow type the reader yields for it."""

    name: str
    select: str
    type: pa.DataType
    convert: str | None = None  # "decimal" | "timestamp" | "date"


def _decimal_type(typmod: int) -> pa.DataType | None:
    """The Arrow decimal for ``numeric(p, s)`` from its typmod; ``None`` when too wide."""
    packed = typmod - 4
    precision = (packed >> 16) & 0xFFFF
    scale = ((packed & 0x7FF) ^ 1024) - 1024
    if scale < 0:  # numeric(3, -1) holds integers up to 10^4
        precision, scale = precision - scale, 0
    precision = max(precision, scale)
    if precision <= 38:
        return pa.decimal128(precision, scale)
    if precision <= 76:
        return pa.decimal256(precision, scale)
    return None


def _plan(raw: pa.Schema) -> list[_Column]:
    """Per column: the SQL that selects it and the Arrow type it comes out as."""
    plan: list[_Column] = []
    for field in raw:
        name = field.name
        quoted = quote_identifier(name)
        kind = field.type
        if isinstance(kind, pa.OpaqueType):
            if kind.type_name == "numeric":
                typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
                decimal = _decimal_type(typmod) if typmod >= 0 else None
                if decimal is not None:
                    plan.append(_Column(name, quoted, decimal, "decimal"))
                else:
                    plan.append(_Column(name, f"{quoted}::float8 AS {quoted}", pa.float64()))
            else:
                plan.append(_Column(name, f"{quoted}::text AS {quoted}", pa.string()))
        elif pa.types.is_list(kind) and isinstance(kind.value_type, pa.OpaqueType):
            if kind.value_type.type_name == "numeric":
                plan.append(
                    _Column(name, f"{quoted}::float8[] AS {quoted}", pa.list_(pa.float64()))
                )
            else:
                plan.append(_Column(name, f"{quoted}::text[] AS {quoted}", pa.list_(pa.string())))
        elif pa.types.is_timestamp(kind):
            plan.append(_Column(name, quoted, kind, "timestamp"))
        elif pa.types.is_date32(kind):
            plan.append(_Column(name, quoted, kind, "date"))
        else:
            plan.append(_Column(name, quoted, kind))
    return plan


def _repair_infinity(array: pa.Array[Any], kind: str) -> pa.Array[Any]:
    """Map ADBC's wrapped-around ``±infinity`` back to the extreme values DuckDB reads as such."""
    width: pa.DataType
    if kind == "timestamp":
        width, low, neg, top = pa.int64(), _MIN_TIMESTAMP_US, _NEG_INFINITY_TIMESTAMP, 2**63 - 1
    else:
        width, low, neg, top = pa.int32(), _MIN_DATE, _NEG_INFINITY_DATE, 2**31 - 1
    ints = array.view(width)
    below = pc.less(ints, pa.scalar(low, width))
    if not pc.any(below).as_py():
        return array
    repaired: pa.Array[Any] = pc.if_else(
        pc.equal(ints, pa.scalar(neg, width)),
        pa.scalar(-top, width),
        pc.if_else(below, pa.scalar(top, width), ints),
    )
    return repaired.view(array.type)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch holding ``batches`` (copied once)."""
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _interval_parts(array: pa.Array[Any]) -> pa.Array[Any]:
    """A month_day_nano interval column as a struct Parquet can store (exact, no rounding)."""
    data = array.buffers()[1]
    count = len(array) + array.offset
    values = (
        np.frombuffer(memoryview(data), dtype=_INTERVAL, count=count)[array.offset :]
        if data
        else None
    )
    if values is None:
        values = np.zeros(0, dtype=_INTERVAL)
    return pa.StructArray.from_arrays(
        [pa.array(values["months"]), pa.array(values["days"]), pa.array(values["nanoseconds"])],
        fields=list(_INTERVAL_STRUCT),
        mask=array.is_null(),
    )


class _Session:
    """An ADBC connection, its cursor and reader, closed once, in the order ADBC requires."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.cursor: Any = connection.cursor()
        self.reader: Any = None

    def close(self) -> None:
        for part in (self.reader, self.cursor, self.connection):
            if part is not None:
                with suppress(Exception):
                    part.close()
        self.reader = self.cursor = self.connection = None


class PostgresReader:
    """A :class:`~taxiway.data.sources.base.Source` over a PostgreSQL table or query."""

    def __init__(self, name: str, spec: PostgresSource) -> None:
        self.name = name
        self.spec = spec

    # ------------------------------------------------------------------ where and how

    def describe(self) -> str:
        what = f"table {self.spec.table}" if self.spec.table else "query"
        try:
            point = self.endpoint()
            port = "" if point.port == "5432" else f":{point.port}"
            where = f"{point.host}{port}/{point.database}"
        except SourceError:
            where = redact(self.spec.url.template)
        return f"postgres {where} ({what})"

    def table_parts(self) -> tuple[str | None, str] | None:
        """``(schema, table)`` of a ``table:`` source (schema ``None`` if unqualified)."""
        if self.spec.table is None:
            return None
        try:
            return split_table(self.spec.table)
        except ValueError as error:
            raise SourceError(
                f"source `{self.name}`: {error}",
                fix='write `table: schema.table` (quote a part holding dots: `"my.schema".t`)',
            ) from None

    def target(self) -> str:
        """What is read, in words: ``table public.orders`` or ``the query``."""
        parts = self.table_parts()
        if parts is None:
            return "the query"
        return "table " + ".".join(p for p in parts if p is not None)

    def _conninfo(self) -> str:
        """The revealed connection string plus the spec's timeout; never shown or logged."""
        try:
            url = self.spec.url.reveal()
        except SourceError as error:
            raise SourceError(f"source `{self.name}`: {error.message}", fix=error.fix) from None
        origin = _pg_errors.url_origin(self.spec.url.names)
        _pg_errors.endpoint(url, origin=origin, source=self.name)  # clear error when malformed
        extra: dict[str, Any] = {
            "connect_timeout": _pg_errors.libpq_timeout(self.spec.connect_timeout_s)
        }
        if "application_name" not in conninfo_to_dict(url):
            extra["application_name"] = "taxiway"
        return make_conninfo(url, **extra)

    def endpoint(self) -> Endpoint:
        """Host, port, database and user this source connects to (no password)."""
        origin = _pg_errors.url_origin(self.spec.url.names)
        return _pg_errors.endpoint(self._conninfo(), origin=origin, source=self.name)

    def _connect_error(self, error: BaseException) -> SourceError:
        return _pg_errors.connect_error(
            error,
            source=self.name,
            endpoint=self.endpoint(),
            names=self.spec.url.names,
            timeout_s=self.spec.connect_timeout_s,
        )

    def connect_psycopg(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A psycopg connection as the configured role; :class:`SourceError` if it fails."""
        conninfo = self._conninfo()
        try:
            return psycopg.connect(conninfo)
        except psycopg.Error as error:
            raise self._connect_error(error) from None

    def _connect_adbc(self) -> _Session:
        conninfo = self._conninfo()
        try:
            return _Session(adbc_pg.connect(conninfo))
        except adbc_driver_manager.Error as error:
            raise self._connect_error(error) from None

    # ------------------------------------------------------------------ SQL

    def _relation_sql(self) -> str:
        parts = self.table_parts()
        if parts is not None:
            return ".".join(quote_identifier(p) for p in parts if p is not None)
        assert self.spec.query is not None  # nosec B101
        return f"({self.spec.query.strip().rstrip(';')})"

    def _select(self, expressions: Sequence[str], limit: int | None = None) -> str:
        sql = f"SELECT {', '.join(expressions) or '*'} FROM {self._relation_sql()} AS source"  # nosec B608
        return sql if limit is None else f"{sql} LIMIT {limit}"

    def _execute(self, session: _Session, sql: str) -> Any:
        """Run ``sql`` and return ADBC's Arrow stream reader, explaining failures."""
        try:
            session.cursor.execute(sql)
            return session.cursor.fetch_record_batch()
        except adbc_driver_manager.Error as error:
            raise self._statement_error(error) from None

    def _raw_schema(self, session: _Session, columns: Sequence[str] | None) -> pa.Schema:
        selected = [quote_identifier(c) for c in columns] if columns else []
        reader = self._execute(session, self._select(selected, limit=0))
        try:
            schema: pa.Schema = reader.schema
            return schema
        finally:
            reader.close()

    def _statement_error(self, error: BaseException) -> SourceError:
        """Explain a failed or interrupted read (SQLSTATE first, then the server's message)."""
        sqlstate = getattr(error, "sqlstate", None)
        primary = _pg_errors.primary_message(error)
        target = self.target()
        head = f"source `{self.name}`"
        if sqlstate == "42501" or primary.startswith("permission denied"):
            found = self._diagnose(lambda conn: self._grant(conn, primary))
            if found is not None:
                grant, view = found
                who = f"role {grant.role}" + (f", owner of view {view}," if view else "")
                return SourceError(
                    f"{head}: {who} may not read {grant.what} ({primary})", fix=grant.statement
                )
            return SourceError(
                f"{head}: {primary}",
                fix="ask the owner of the object to GRANT SELECT to the role in the URL",
            )
        if sqlstate in ("42P01", "3F000"):
            parts = self.table_parts()
            if parts is None:
                return SourceError(
                    f"{head}: the query reads a table that does not exist ({primary})",
                    fix="check the table names in `query:` (schema.table; names are case-sensitive "
                    "when quoted)",
                )
            similar = self._diagnose(lambda conn: _pg_errors.similar_relations(conn, *parts)) or []
            point = self.endpoint()
            hint = f"; did you mean {' or '.join(similar)}?" if similar else ""
            return SourceError(
                f"{head}: {target} does not exist in database {point.database} ({primary})",
                fix=f"check `table:` in the spec{hint}",
            )
        if sqlstate == "42703":
            return SourceError(
                f"{head}: {primary} in {target}",
                fix="check the column names the spec uses against the source's columns",
            )
        if sqlstate == "42601":
            return SourceError(
                f"{head}: the query is not valid SQL ({primary})",
                fix="run the query in psql to correct it, then paste it back into `query:`",
            )
        if sqlstate == "57014":
            return SourceError(
                f"{head}: the server cancelled the read of {target} ({primary})",
                fix="raise the role's statement_timeout, or read less (a `query:` with a filter)",
            )
        if any(m in primary.lower() for m in _CONNECTION_LOST):
            return SourceError(
                f"{head}: the connection was lost while reading {target} ({primary})",
                fix="retry; if it recurs, check the server's log and any idle/statement timeouts",
            )
        return SourceError(
            f"{head}: reading {target} failed: {primary}",
            fix="run the same SELECT in psql as the same role to see the full error",
        )

    def _grant(
        self, conn: psycopg.Connection[tuple[Any, ...]], message: str
    ) -> tuple[_pg_errors.Grant, str | None] | None:
        """The GRANT for a denial, and the view it was met through (its owner needs it)."""
        denied = _pg_errors.denied_object(message)
        parts = self.table_parts()
        owner = None
        # denied on another table than the one named: the read went through a view
        if denied is not None and denied[0] != "schema" and parts and denied[1] != parts[1]:
            owner = _pg_errors.view_owner(conn, self._relation_sql())
        view = self.spec.table if owner is not None else None
        grant = _pg_errors.grant_for_denial(conn, message, owner)
        return (grant, view) if grant is not None else None

    def _diagnose(self, ask: Any) -> Any:
        """Ask a follow-up question over psycopg; ``None`` if even that fails."""
        try:
            with self.connect_psycopg() as conn:
                return ask(conn)
        except (SourceError, psycopg.Error):
            return None

    # ------------------------------------------------------------------ Source protocol

    def schema(self) -> pa.Schema:
        session = self._connect_adbc()
        try:
            plan = _plan(self._raw_schema(session, None))
        finally:
            session.close()
        return pa.schema([pa.field(c.name, c.type) for c in plan])

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int | None = None
    ) -> pa.RecordBatchReader:
        """Stream the rows as record batches of ``batch_rows`` (default: the spec's ``batch_rows``).

        Connects and starts the COPY now, so a bad table, column or grant fails here; the
        connection closes when the stream is exhausted or dropped.
        """
        rows = batch_rows if batch_rows is not None else self.spec.batch_rows
        if rows <= 0:
            raise ValueError(f"batch_rows must be positive, got {rows}")
        session = self._connect_adbc()
        try:
            plan = _plan(self._raw_schema(session, columns))
            session.reader = self._execute(session, self._select([c.select for c in plan]))
        except BaseException:
            session.close()
            raise
        schema = pa.schema([pa.field(c.name, c.type) for c in plan])
        stream = self._stream(session, plan, schema, rows)
        weakref.finalize(stream, session.close)  # a stream dropped before its first batch
        return pa.RecordBatchReader.from_batches(schema, stream)

    def _stream(
        self, session: _Session, plan: list[_Column], schema: pa.Schema, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Converted batches of exactly ``batch_rows`` (the last may be shorter)."""
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        try:
            for raw in self._raw_batches(session):
                batch = self._convert(raw, plan, schema)
                offset = 0
                if pending:
                    head = batch.slice(0, batch_rows - pending_rows)
                    pending.append(head)
                    pending_rows += head.num_rows
                    offset = head.num_rows
                    if pending_rows < batch_rows:
                        continue
                    yield _concat(pending)
                    pending, pending_rows = [], 0
                while batch.num_rows - offset >= batch_rows:
                    yield batch.slice(offset, batch_rows)
                    offset += batch_rows
                if offset < batch.num_rows:
                    pending, pending_rows = [batch.slice(offset)], batch.num_rows - offset
            if pending:
                yield _concat(pending)
        finally:
            session.close()

    def _raw_batches(self, session: _Session) -> Iterator[pa.RecordBatch]:
        reader = session.reader
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (adbc_driver_manager.Error, pa.ArrowException, OSError) as error:
                raise self._statement_error(error) from None
            if batch.num_rows:
                yield batch

    def _convert(
        self, batch: pa.RecordBatch, plan: list[_Column], schema: pa.Schema
    ) -> pa.RecordBatch:
        arrays: list[pa.Array[Any]] = []
        for column, array in zip(plan, batch.columns, strict=True):
            if column.convert == "decimal":
                array = self._to_decimal(column, array)
            elif column.convert is not None:
                array = _repair_infinity(array, column.convert)
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _to_decimal(self, column: _Column, array: pa.Array[Any]) -> pa.Array[Any]:
        text = array.storage if isinstance(array, pa.ExtensionArray) else array
        try:
            return pc.cast(text, column.type)
        except pa.ArrowInvalid:
            nan = bool(pc.any(pc.equal(text, pa.scalar("nan"))).as_py())
            why = "NaN, which a decimal cannot hold" if nan else "a value its type cannot hold"
            quoted = quote_identifier(column.name)
            raise SourceError(
                f"source `{self.name}`: column {column.name} of {self.target()} holds {why}",
                fix=f"read it through a query that maps it, e.g. `query: SELECT ..., "  # nosec B608
                f"NULLIF({quoted}, 'NaN') AS {quoted} FROM ...`",
            ) from None

    def register(self, con: duckdb.DuckDBPyConnection, view: str, staging_dir: Path) -> None:
        """Stage the rows to ``staging_dir/<source>/<uuid>.parquet`` and view them in ``con``."""
        reader = self.batches()
        folder = Path(staging_dir) / self.name
        path = folder / f"{uuid.uuid4().hex}.parquet"
        partial = path.with_name(path.name + ".partial")
        intervals = [f.name for f in reader.schema if pa.types.is_interval(f.type)]
        staged = pa.schema(
            [
                pa.field(f.name, _INTERVAL_STRUCT) if f.name in intervals else f
                for f in reader.schema
            ]
        )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(partial, staged, compression="zstd") as writer:
                for batch in reader:
                    if intervals:
                        batch = pa.RecordBatch.from_arrays(
                            [
                                _interval_parts(a) if n in intervals else a
                                for n, a in zip(batch.schema.names, batch.columns, strict=True)
                            ],
                            schema=staged,
                        )
                    writer.write_batch(batch)
            partial.replace(path)
        except pa.ArrowException as error:
            raise SourceError(
                f"source `{self.name}`: cannot stage {self.target()} as Parquet: {error}",
                fix="cast the column Parquet cannot hold to text in a `query:`",
            ) from None
        except OSError as error:
            raise SourceError(
                f"source `{self.name}`: cannot stage {self.target()} to {folder}: "
                f"{error.strerror or error}",
                fix="free disk space or make the staging folder writable",
            ) from None
        finally:
            reader.close()
            partial.unlink(missing_ok=True)
        replace = ", ".join(
            "to_months(struct_extract({c}, 'months')) + to_days(struct_extract({c}, 'days'))"
            " + to_microseconds(struct_extract({c}, 'nanoseconds') // 1000) AS {c}".format(
                c=quote_identifier(name)
            )
            for name in intervals
        )
        star = f"* REPLACE ({replace})" if replace else "*"
        sql = (
            f"CREATE OR REPLACE TEMP VIEW {quote_identifier(view)} AS "  # nosec B608
            f"SELECT {star} FROM read_parquet({quote_literal(str(path))})"
        )
        try:
            con.execute(sql)
        except duckdb.Error as error:
            raise SourceError(
                f"source `{self.name}`: DuckDB cannot read the staged copy {path}: {error}",
                fix="delete the staging folder and run again",
            ) from None
