"""`taxiway check`: reach every source, check access, validate contracts and freshness.

Never stops at the first problem: each source's failures become findings and the next source
is checked. A `block` finding means nothing downstream of that source may run.

``engine: spark`` (or ``engine="spark"``) runs the contract checks and writes the quarantine
on Spark (:mod:`taxiway.data.stage_spark`), from the same SQL.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taxiway.data.contracts.loader import load_contract
from taxiway.data.contracts.report import ValidationReport
from taxiway.data.contracts.validate import new_run_id
from taxiway.data.findings import Finding, worst
from taxiway.data.sources import Source, open_source
from taxiway.data.stage import stage_source
from taxiway.data.stage_spark import open_spark_engine, stage_on_spark
from taxiway.engines.duckdb import connect
from taxiway.engines.sql import Engine, as_engine
from taxiway.errors import SourceError, SpecError
from taxiway.spec.models import (
    AggregateView,
    EventLabel,
    LatestView,
    PostgresSource,
    StaticView,
    SumLabel,
    TaxiwaySpec,
)
from taxiway.spec.project import Project
from taxiway.spec.recommend import DenyFilter

if TYPE_CHECKING:
    from taxiway.engines.spark import SparkEngine

__all__ = ["CheckReport", "SourceCheck", "check_project", "used_columns"]

Progress = Callable[[str, str], None]


@dataclass
class SourceCheck:
    """What checking one source found."""

    name: str
    kind: str
    location: str
    rows: int | None = None
    findings: list[Finding] = field(default_factory=list)
    validation: ValidationReport | None = None
    duration_s: float = 0.0

    @property
    def status(self) -> str:
        """``ok``, or the worst severity found (``block``, ``quarantine``, ``warn``)."""
        found = worst([f for f in self.findings if f.severity != "info"])
        return found or "ok"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``name``, ``rows``, ``status``, ``findings[]``, ``rules[]``..."""
        return {
            "name": self.name,
            "kind": self.kind,
            "location": self.location,
            "rows": self.rows,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "findings": [f.as_dict() for f in self.findings],
            "rules": [r.as_dict() for r in self.validation.results] if self.validation else [],
            "quarantine": (
                str(self.validation.quarantine_path)
                if self.validation and self.validation.quarantine_path
                else None
            ),
            "quarantined_rows": self.validation.quarantined_rows if self.validation else 0,
        }


@dataclass
class CheckReport:
    """The result of `taxiway check` over every source of a spec."""

    run_id: str
    spec: str
    sources: list[SourceCheck]
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        """Whether any `block` finding was raised."""
        return any(f.blocks for f in self.all_findings())

    def all_findings(self) -> list[Finding]:
        """Spec-level findings, then each source's."""
        return [*self.findings, *(f for s in self.sources for f in s.findings)]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the `--json` output of `taxiway check`)."""
        return {
            "run_id": self.run_id,
            "spec": self.spec,
            "blocked": self.blocked,
            "findings": [{"source": f.source, **f.as_dict()} for f in self.findings],
            "sources": [s.as_dict() for s in self.sources],
        }


def used_columns(spec: TaxiwaySpec, source: str) -> list[str]:
    """Every column of ``source`` the spec reads: times, keys, feature and label inputs, and
    the columns ``recommend:`` names."""
    declared = spec.sources[source]
    columns: list[str] = []

    def add(*names: str | None) -> None:
        for name in names:
            if name and name not in columns:
                columns.append(name)

    add(declared.timestamp, declared.created)
    for view in spec.features.values():
        if view.source != source:
            continue
        if view.entity in spec.entities:
            add(*spec.entity_keys(view.entity))
        if isinstance(view, AggregateView):
            add(*(a.column for a in view.aggregate.values()))
        elif isinstance(view, LatestView):
            add(*view.latest)
        elif isinstance(view, StaticView):
            add(*view.static)
    label = spec.label
    if isinstance(label, EventLabel | SumLabel) and label.source == source:
        if label.entity in spec.entities:
            add(*spec.entity_keys(label.entity))
        if isinstance(label, SumLabel):
            add(label.expr)
    spine = spec.spine
    if spine is not None and spine.source == source:
        entity = spine.entity or (
            label.entity if isinstance(label, EventLabel | SumLabel) else None
        )
        if entity and entity in spec.entities:
            add(*spec.entity_keys(entity))
        if spec.model is not None:
            add(*spec.model.request_fields)
    recommend = spec.recommend
    if recommend is not None:
        if recommend.interactions.source == source:
            i = recommend.interactions
            add(i.user, i.item, i.weight, i.event_type)
        if recommend.catalog.source == source:
            c = recommend.catalog
            add(c.item, c.available, c.category)
        for rule in recommend.filters:
            if isinstance(rule, DenyFilter) and rule.source == source:
                add(rule.item or recommend.catalog.item)
    return columns


def check_project(
    project: Project,
    *,
    as_of: datetime | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
    master: str | None = None,
) -> CheckReport:
    """Check every source of ``project``; see the module docstring.

    ``engine`` and ``master`` override the spec's ``engine:`` and ``spark.master``.
    """
    run_id = new_run_id()
    report = CheckReport(run_id=run_id, spec=str(project.spec_path), sources=[])
    report.findings.extend(_spec_findings(project.spec))
    temp = project.state_dir / "tmp" / run_id
    spark: SparkEngine | None = None
    current = [""]
    try:
        if (engine or project.spec.engine) == "spark":
            temp.mkdir(parents=True, exist_ok=True)

            def say(step: str) -> None:
                if progress and current[0]:
                    progress(current[0], step)

            spark = open_spark_engine(project, temp, master, say)
        for name in project.spec.sources:
            current[0] = name
            if progress:
                progress(name, "connecting")
            report.sources.append(
                _check_source(project, name, run_id, as_of or datetime.now(UTC), progress, spark)
            )
            if progress:
                progress(name, "done")
    finally:
        if spark is not None:
            spark.close()
        shutil.rmtree(temp, ignore_errors=True)
    return report


def _spec_findings(spec: TaxiwaySpec) -> list[Finding]:
    findings = []
    for name, view in spec.features.items():
        if isinstance(view, LatestView) and view.ttl is None:
            findings.append(
                Finding(
                    view.source,
                    f"features.{name}.ttl",
                    "warn",
                    f"latest view `{name}` has no `ttl`: a value from long ago is served as if "
                    "it were current",
                    fix=f"add `ttl:` to features.{name} (e.g. `ttl: 3h`)"
                    if spec.sources[view.source].timestamp is not None
                    else f"give sources.{view.source} a `timestamp:` (when each row was true), "
                    f"then add `ttl:` to features.{name} (e.g. `ttl: 3h`)",
                )
            )
    return findings


def _check_source(
    project: Project,
    name: str,
    run_id: str,
    as_of: datetime,
    progress: Progress | None,
    spark: SparkEngine | None = None,
) -> SourceCheck:
    declared = project.spec.sources[name]
    started = time.perf_counter()
    result = SourceCheck(name=name, kind=declared.kind, location="")
    try:
        reader = open_source(name, declared)
        result.location = reader.describe()
        needed = used_columns(project.spec, name)
        if isinstance(declared, PostgresSource):
            if progress:
                progress(name, "checking access")
            # the postgres extra is optional: import its access checks only for postgres sources
            from taxiway.data.access import check_access

            contract_columns = _contract_columns(declared.contract)
            access = check_access(reader, _merge(needed, contract_columns))  # type: ignore[arg-type]
            result.findings.extend(access)
            if any(f.blocks for f in access):
                return result
        if progress:
            progress(name, "reading")
        _validate_source(project, reader, needed, result, run_id, as_of, progress, spark)
    except SourceError as error:
        result.findings.append(Finding(name, "source.read", "block", error.message, fix=error.fix))
    finally:
        result.duration_s = time.perf_counter() - started
    return result


def _contract_columns(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        return [p.name for p in load_contract(path).table.properties]
    except SpecError:
        return []  # reported with its location when the contract is validated


def _merge(first: list[str], second: list[str]) -> list[str]:
    return first + [c for c in second if c not in first]


def _validate_source(
    project: Project,
    reader: Source,
    needed: list[str],
    result: SourceCheck,
    run_id: str,
    as_of: datetime,
    progress: Progress | None,
    spark: SparkEngine | None = None,
) -> None:
    name = result.name
    staging = project.state_dir / "staging" / run_id
    temp = project.state_dir / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    con = connect(temp_directory=temp)
    try:
        if progress:
            progress(name, "validating")
        if spark is None:
            staged = stage_source(
                project, con, reader, run_id=run_id, as_of=as_of, staging_dir=staging
            )
        else:
            staged = stage_on_spark(
                project, spark, con, reader, run_id=run_id, as_of=as_of, staging_dir=staging
            )
        result.rows = staged.rows
        result.validation = staged.validation
        present = set(as_engine(spark or con).columns(f"source_{name}"))
        for column in needed:
            if column not in present:
                result.findings.append(
                    Finding(
                        name,
                        f"spec.column.{column}",
                        "block",
                        f"the spec uses column `{column}`, which source `{name}` does not have",
                        fix=f"fix the column name in the spec, or add `{column}` to the source "
                        f"(it has: {', '.join(sorted(present))})",
                    )
                )
        result.findings.extend(staged.findings)
        if staged.validation is None:
            result.findings.append(
                Finding(
                    name,
                    "contract.missing",
                    "warn",
                    f"source `{name}` has no data contract: nothing checks its rows",
                    fix=f"write an ODCS contract (see docs/contracts.md) and set "
                    f"`sources.{name}.contract`",
                )
            )
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)
