"""`taxiway features build`: the point-in-time training set and its manifest.

Output columns: the spine's entity keys under their key names, ``timestamp``, the request
fields (``model.request_fields``: columns of the event spine's row), every feature
(``<view>__<feature>_<window>`` or ``<view>__<column>``), then the label under its name. The
manifest (``<out stem>.manifest.json``) records row counts, drops by reason, the feature list,
the definitions hash and a fingerprint of every source read. Given a ``snapshots`` folder (as
`taxiway train` gives it), the set is also written as the next version of the Delta table
there and the manifest's ``snapshot`` names that version (:mod:`taxiway.features.snapshots`).

``engine: spark`` (or ``engine="spark"``) runs the spine, the views, the label and the write on
Spark (:mod:`taxiway.engines.spark`) from the same plan. Sources are still staged and validated
by DuckDB: a Parquet source without a contract is then read by Spark where it lies; any other
source's clean rows are handed over as a Parquet file in the run's temporary folder.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from taxiway.data.check import used_columns
from taxiway.data.contracts.validate import new_run_id
from taxiway.data.sources import open_source
from taxiway.data.sources.file import FileReader
from taxiway.data.stage import StagedSource, fingerprint, stage_sources
from taxiway.engines.duckdb import connect, quote_identifier, quote_literal
from taxiway.engines.sql import DuckDBEngine, Engine, SqlEngine
from taxiway.errors import FeatureError, MissingExtraError
from taxiway.features.definitions import definitions_hash, feature_columns
from taxiway.features.labels import KNOWN_COLUMN, compute_label
from taxiway.features.opt_out import exclude_opted_out
from taxiway.features.pit import LatestPlan, compute_view
from taxiway.features.spine import LABEL_COLUMN, build_spine, request_fields
from taxiway.spec.models import (
    ColumnLabel,
    DeltaSource,
    EventLabel,
    EventSpine,
    FileSource,
    PostgresSource,
    SumLabel,
    TaxiwaySpec,
)
from taxiway.spec.project import Project

__all__ = [
    "TrainingSetManifest",
    "build_training_set",
    "cached_training_set",
    "current_fingerprint",
    "manifest_path",
    "require_columns",
    "used_sources",
]

Progress = Callable[[str], None]


@dataclass
class TrainingSetManifest:
    """What was built, from what, and what was left out."""

    spec: str
    path: str
    rows: int
    spine_rows: int
    dropped: dict[str, int]
    keys: list[str]
    features: list[str]
    label: str | None
    definitions_hash: str
    sources: dict[str, dict[str, Any]]
    built_at: str
    duration_s: float
    phases: dict[str, float] = field(default_factory=dict)
    request_fields: list[str] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    """The Delta table version holding this set (``Snapshot.as_dict``); empty when none."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        """Definitions plus source fingerprints: equal fingerprints mean equal training sets."""
        parts = [self.definitions_hash, f"request={','.join(self.request_fields)}"] + [
            f"{name}={info['fingerprint']}" for name, info in sorted(self.sources.items())
        ]
        return "|".join(parts)


def manifest_path(out: Path) -> Path:
    """``training.parquet`` → ``training.manifest.json``."""
    return out.with_name(f"{out.stem}.manifest.json")


def used_sources(spec: TaxiwaySpec) -> list[str]:
    """The sources a training set reads: feature views, spine and label, in spec order."""
    names = {view.source for view in spec.features.values()}
    if spec.spine is not None:
        names.add(spec.spine.source)
    if isinstance(spec.label, EventLabel | SumLabel):
        names.add(spec.label.source)
    if spec.governance is not None and spec.governance.opt_out is not None:
        names.add(spec.governance.opt_out.source)  # a changed list changes the fingerprint
    return [name for name in spec.sources if name in names]


def build_training_set(
    project: Project,
    out: Path,
    *,
    progress: Progress | None = None,
    memory_limit: str | None = None,
    latest_plan: LatestPlan = "auto",
    snapshots: Path | None = None,
    engine: Engine | None = None,
    master: str | None = None,
) -> TrainingSetManifest:
    """Build the training set of ``project`` into ``out`` (Parquet) and write its manifest.

    ``latest_plan`` forces how latest views with a ttl are joined (``pit.compute_view``).
    With ``snapshots`` (a Delta table folder) the set is also written as its next version.
    ``engine`` and ``master`` override the spec's ``engine:`` and ``spark.master``.
    """
    spec = project.spec
    started = time.perf_counter()
    phases: dict[str, float] = {}
    run_id = new_run_id()
    temp = project.state_dir / "tmp" / run_id
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp, memory_limit=memory_limit)
    runner: SqlEngine = DuckDBEngine(con)

    def phase(name: str, began: float) -> float:
        now = time.perf_counter()
        phases[name] = round(now - began, 3)
        return now

    try:
        say = progress or (lambda _: None)
        say("staging and validating sources")
        staged = stage_sources(project, con, used_sources(spec), run_id=run_id)
        require_columns(con, spec, staged)
        if (engine or spec.engine) == "spark":
            say("starting Spark")
            runner = _spark(project, con, staged, temp, master, progress)
        mark = phase("sources", started)
        if spec.spine is None:
            raise FeatureError(
                "the spec has no `spine:`, so there are no prediction times to build rows for",
                fix="add `spine:` (see docs/features.md)",
            )
        say("building the spine")
        keys = build_spine(runner, spec, staged[spec.spine.source].view, "__spine")
        spine_rows = _count(runner, "__spine")
        key_null = _count(runner, staged[spec.spine.source].view) - spine_rows
        if isinstance(spec.spine, EventSpine) and key_null:
            say(f"{key_null:,} spine source rows have no time or no key: left out")
        opted_out = _leave_out_opted_out(runner, spec, staged, say)
        mark = phase("spine", mark)
        tables: list[tuple[str, list[str]]] = []
        for view_name, view in spec.features.items():
            say(f"computing {view_name}")
            columns = compute_view(
                runner,
                spec,
                view_name,
                staged[view.source].view,
                "__spine",
                f"__f_{view_name}",
                plan=latest_plan,
            )
            tables.append((f"__f_{view_name}", [c.name for c in columns]))
            mark = phase(f"view:{view_name}", mark)
        label = spec.label
        if isinstance(label, EventLabel | SumLabel):
            say(f"computing the label {label.name}")
            compute_label(runner, spec, staged[label.source].view, "__spine", "__label")
            mark = phase("label", mark)
        say(f"writing {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        rows, dropped = _write(runner, spec, keys, tables, out)
        if isinstance(spec.spine, EventSpine):
            dropped["key_or_time_null"] = key_null
        if opted_out is not None:
            dropped["opt_out"] = opted_out
        phase("write", mark)
    except duckdb.OutOfMemoryException as error:
        raise FeatureError(
            f"the training set ran out of memory: {str(error).splitlines()[0]}",
            fix=f"raise --memory-limit (now {memory_limit or 'DuckDB default: 80% of RAM'}) or "
            f"free disk space in {temp} for spilling",
        ) from None
    except duckdb.Error as error:
        raise FeatureError(
            f"the training set cannot be written: {str(error).splitlines()[0]}",
            fix="check the disk space and permissions of the output folder",
        ) from None
    finally:
        runner.close()
        con.close()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)
    manifest = TrainingSetManifest(
        spec=str(project.spec_path),
        path=str(out),
        rows=rows,
        spine_rows=spine_rows,
        dropped=dropped,
        keys=list(keys),
        features=[c.name for c in feature_columns(spec)],
        request_fields=request_fields(spec),
        label=label.name if label is not None else None,
        definitions_hash=definitions_hash(spec),
        sources={name: s.manifest() for name, s in staged.items()},
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        phases=phases,
    )
    if snapshots is not None:
        began = time.perf_counter()
        say(f"recording the training set as a version of {snapshots}")
        manifest.snapshot = _snapshot(out, snapshots, manifest)
        phases["snapshot"] = round(time.perf_counter() - began, 3)
    manifest_path(out).write_text(json.dumps(manifest.as_dict(), indent=2) + "\n")
    return manifest


def _spark(
    project: Project,
    con: duckdb.DuckDBPyConnection,
    staged: dict[str, StagedSource],
    temp: Path,
    master: str | None,
    progress: Progress | None,
) -> SqlEngine:
    """A Spark engine holding every staged source under its DuckDB view's name."""
    # optional extra (spark): PySpark and SQLGlot load only when a build asks for Spark
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
    engine = SparkEngine(session, temp, progress=progress)
    for name, source in staged.items():
        declared = project.spec.sources[name]
        if source.validation is None:  # every row is clean: Spark reads the source itself
            if isinstance(declared, FileSource):
                reader = FileReader(name, declared)
                if reader.format() == "parquet":
                    engine.register_parquet(source.view, reader.files())
                    continue
            if isinstance(declared, DeltaSource) and source.history is not None:
                # the version DuckDB staged, read from the files its log names
                version = int(source.history["version"])
                engine.register_delta(source.view, name, declared.path, version)
                continue
            if isinstance(declared, PostgresSource):
                engine.register_postgres(source.view, name, declared)
                continue
        # validated (or not Parquet): DuckDB's clean rows, handed over as one Parquet file
        handed = temp / f"handoff-{name}.parquet"
        con.execute(
            f"COPY (SELECT * FROM {quote_identifier(source.view)}) "
            f"TO {quote_literal(str(handed))} (FORMAT parquet)"
        )
        engine.register_parquet(source.view, [str(handed)])
    return engine


def _leave_out_opted_out(
    engine: SqlEngine, spec: TaxiwaySpec, staged: dict[str, StagedSource], say: Progress
) -> int | None:
    """Delete the opted-out units' spine rows (``governance.opt_out``); their count, or None
    without an opt-out list (:mod:`taxiway.features.opt_out`)."""
    opt_out = spec.governance.opt_out if spec.governance is not None else None
    if opt_out is None:
        return None
    count = exclude_opted_out(engine, spec, staged[opt_out.source].view, "__spine")
    say(f"{count:,} spine rows of opted-out units: left out")
    return count


def _snapshot(out: Path, snapshots: Path, manifest: TrainingSetManifest) -> dict[str, Any]:
    """Write the set at ``out`` as the next version of the Delta table ``snapshots``."""
    # optional extra (train): `features build` and `check` run without deltalake installed
    import pyarrow.parquet as pq

    from taxiway.features.snapshots import write_snapshot

    metadata = {"fingerprint": manifest.fingerprint, "definitions_hash": manifest.definitions_hash}
    return write_snapshot(snapshots, pq.read_table(out), metadata=metadata).as_dict()


def current_fingerprint(project: Project) -> str:
    """The fingerprint a training set built now would have, without building it.

    Files and DuckDB databases cost a ``stat``; a PostgreSQL source costs one scan.
    """
    spec = project.spec
    run_id = new_run_id()
    con = connect()
    try:
        parts: dict[str, dict[str, Any]] = {}
        for name in used_sources(spec):
            reader = open_source(name, spec.sources[name])
            view = f"source_{name}"
            reader.register(con, view, project.state_dir / "staging" / run_id)
            parts[name] = {"fingerprint": fingerprint(con, reader, view)}
    finally:
        con.close()
        shutil.rmtree(project.state_dir / "staging" / run_id, ignore_errors=True)
    probe = TrainingSetManifest(
        spec="",
        path="",
        rows=0,
        spine_rows=0,
        dropped={},
        keys=[],
        features=[],
        label=None,
        definitions_hash=definitions_hash(spec),
        sources=parts,
        built_at="",
        duration_s=0.0,
        request_fields=request_fields(spec),
    )
    return probe.fingerprint


def cached_training_set(
    project: Project,
    out: Path,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
    memory_limit: str | None = None,
    snapshots: Path | None = None,
) -> tuple[TrainingSetManifest, bool]:
    """The training set at ``out``: reused when its manifest's fingerprint is current, else
    built. Returns the manifest and whether it was reused.

    With ``snapshots``, a built set is written as the next version of that Delta table; a
    reused set keeps the version it was written as (one written before snapshots existed is
    written now).
    """
    meta = manifest_path(out)
    if not rebuild and out.exists() and meta.exists():
        try:
            manifest = TrainingSetManifest(**json.loads(meta.read_text()))
        except (TypeError, ValueError):
            manifest = None
        if manifest is not None and manifest.fingerprint == current_fingerprint(project):
            if snapshots is not None and not manifest.snapshot:
                manifest.snapshot = _snapshot(out, snapshots, manifest)
                meta.write_text(json.dumps(manifest.as_dict(), indent=2) + "\n")
            return manifest, True
    built = build_training_set(
        project, out, progress=progress, memory_limit=memory_limit, snapshots=snapshots
    )
    return built, False


def require_columns(con: Any, spec: TaxiwaySpec, staged: dict[str, StagedSource]) -> None:
    """Raise :class:`FeatureError` naming every column the spec uses but a source lacks."""
    problems = []
    for name, source in staged.items():
        described = con.execute(f"DESCRIBE {quote_identifier(source.view)}").fetchall()
        present = {str(row[0]) for row in described}
        missing = [c for c in used_columns(spec, name) if c not in present]
        if missing:
            problems.append(
                f"source `{name}` has no column {', '.join(missing)} "
                f"(it has: {', '.join(sorted(present))})"
            )
    if problems:
        raise FeatureError(
            "the spec uses columns the data does not have: " + "; ".join(problems),
            fix="fix the column names in the spec (entities, features, label), or the data",
        )


def _count(engine: SqlEngine, table: str, where: str = "TRUE") -> int:
    row = engine.fetch_one(f"SELECT count(*) FROM {quote_identifier(table)} WHERE {where}")
    return int(row[0]) if row else 0


def _write(
    engine: SqlEngine,
    spec: TaxiwaySpec,
    keys: tuple[str, ...],
    tables: list[tuple[str, list[str]]],
    out: Path,
) -> tuple[int, dict[str, int]]:
    q = quote_identifier
    selected = [f"s.{q(k)}" for k in keys] + ['s.__t AS "timestamp"']
    requested = [f for f in request_fields(spec) if f not in keys]
    selected += [f"s.{q(f)}" for f in requested]
    joins = []
    for index, (table, columns) in enumerate(tables):
        alias = f"f{index}"
        selected += [f"{alias}.{q(c)}" for c in columns]
        joins.append(f"LEFT JOIN {q(table)} AS {alias} USING (__sid)")
    label = spec.label
    where = "TRUE"
    dropped: dict[str, int] = {}
    if isinstance(label, ColumnLabel):
        selected.append(f"s.{LABEL_COLUMN} AS {q(label.name)}")
        where = f"s.{LABEL_COLUMN} IS NOT NULL"
        dropped["label_null"] = _count(engine, "__spine", f"{LABEL_COLUMN} IS NULL")
    elif isinstance(label, EventLabel | SumLabel):
        selected.append(f"l.__label AS {q(label.name)}")
        joins.append("JOIN __label AS l USING (__sid)")
        where = f"l.{KNOWN_COLUMN}"
        dropped["label_unknown"] = _count(engine, "__label", f"NOT {KNOWN_COLUMN}")
    query = (
        f"SELECT {', '.join(selected)} FROM __spine AS s {' '.join(joins)} "
        f"WHERE {where} ORDER BY s.__sid"
    )
    return engine.write_parquet(query, out), dropped
