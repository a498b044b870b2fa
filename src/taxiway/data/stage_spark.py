"""Stage sources on Spark (``engine: spark``): the contract checked and the bad rows set aside
by Spark itself, with the SQL of :mod:`taxiway.data.contracts` (one definition, transpiled).

A Parquet file source is read by Spark where it lies. Any other source is read by its DuckDB
reader and handed to Spark as one Parquet file in the run's temporary folder (which a
cluster's workers must be able to read). Either way the rows, the rules' counts, the samples,
the quarantine file and the clean view come from Spark; the clean view (``source_<name>__clean``)
is a Spark view that the plan reads next (materialization, training sets).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from taxiway.data.sources import Source, open_source
from taxiway.data.sources.delta import DeltaReader
from taxiway.data.sources.file import FileReader
from taxiway.data.stage import StagedSource, fingerprint, raise_if_blocked, staged_result
from taxiway.engines.duckdb import quote_identifier, quote_literal
from taxiway.errors import MissingExtraError
from taxiway.spec.models import PostgresSource
from taxiway.spec.project import Project

if TYPE_CHECKING:
    from taxiway.engines.spark import SparkEngine

__all__ = ["open_spark_engine", "register", "stage_on_spark", "stage_sources_on_spark"]


def open_spark_engine(
    project: Project,
    temp: Path,
    master: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SparkEngine:
    """A Spark engine on ``master`` (default: the spec's ``spark.master``, else ``local[2]``)
    with the spec's ``spark.conf``; ``progress`` hears the stages done (see SparkEngine)."""
    # optional extra (spark): PySpark and SQLGlot load only when a command asks for Spark
    try:
        from taxiway.engines.spark import DEFAULT_MASTER, SparkEngine, spark_session
    except ModuleNotFoundError as error:
        raise MissingExtraError(
            "spark", needed_by="engine: spark", missing=[error.name or "sqlglot"]
        ) from None
    settings = project.spec.spark
    conf = {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in (settings.conf if settings else {}).items()
    }
    session = spark_session(master or (settings.master if settings else DEFAULT_MASTER), conf)
    return SparkEngine(session, temp, progress=progress)


def stage_on_spark(
    project: Project,
    engine: SparkEngine,
    con: duckdb.DuckDBPyConnection,
    reader: Source,
    *,
    run_id: str,
    as_of: datetime | None = None,
    staging_dir: Path,
    keep_quarantine: bool = True,
) -> StagedSource:
    """``stage_source`` on Spark: register ``reader`` as ``source_<name>`` in ``engine``,
    validate it there against its contract and return its clean view. ``con`` reads the
    sources Spark does not read itself. Raises nothing on `block` findings."""
    raw = f"source_{reader.name}"
    register(engine, con, reader, raw, staging_dir)
    return staged_result(
        project,
        engine,
        reader,
        raw,
        fingerprint(con, reader, raw),  # files by their stat; others scanned in DuckDB
        run_id=run_id,
        as_of=as_of,
        keep_quarantine=keep_quarantine,
    )


def register(
    engine: SparkEngine,
    con: duckdb.DuckDBPyConnection,
    reader: Source,
    raw: str,
    staging_dir: Path,
) -> None:
    """Expose ``reader``'s rows as ``raw`` in Spark: read by Spark where it can (Parquet
    files, a Delta table's version, PostgreSQL over JDBC), else read by DuckDB and handed over
    as one Parquet file in ``engine.temp``."""
    if isinstance(reader, FileReader) and reader.format() == "parquet":
        engine.register_parquet(raw, reader.files())
        return
    reader.register(con, raw, staging_dir)  # DuckDB's view too: the fingerprint scans it
    if isinstance(reader, DeltaReader) and reader.version is not None:
        # the version DuckDB pinned (and the manifest records), from the files its log names
        engine.register_delta(raw, reader.name, reader.spec.path, reader.version)
        return
    declared = getattr(reader, "spec", None)  # the reader's module needs the postgres extra
    if isinstance(declared, PostgresSource):
        engine.register_postgres(raw, reader.name, declared)
        return
    handed = engine.temp / f"handoff-{reader.name}.parquet"
    con.execute(
        f"COPY (SELECT * FROM {quote_identifier(raw)}) "  # nosec B608
        f"TO {quote_literal(str(handed))} (FORMAT parquet)"
    )
    engine.register_parquet(raw, [str(handed)])


def stage_sources_on_spark(
    project: Project,
    engine: SparkEngine,
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    *,
    run_id: str,
    as_of: datetime | None = None,
    keep_quarantine: bool = True,
) -> dict[str, StagedSource]:
    """``stage_sources`` on Spark: raise :class:`ContractViolation` if any source blocks."""
    staging = project.state_dir / "staging" / run_id
    staged = {
        name: stage_on_spark(
            project,
            engine,
            con,
            open_source(name, project.spec.sources[name]),
            run_id=run_id,
            as_of=as_of,
            staging_dir=staging,
            keep_quarantine=keep_quarantine,
        )
        for name in names
    }
    raise_if_blocked(staged)
    return staged
