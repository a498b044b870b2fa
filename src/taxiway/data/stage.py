"""Stage sources for the offline engine: register, validate against the contract, expose the
clean rows as a view, and fingerprint what was read.

A stream source is read from its Delta history at one version, a Delta source at its pinned or
newest version: the manifest records it (``history: {path, version}``), so a model's inputs
name the version it was trained on.

Downstream stages (training sets, materialization) read only ``StagedSource.view``: the rows
that passed every `quarantine` rule. A source whose contract blocks raises
:class:`~taxiway.errors.ContractViolation` naming every blocking finding.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from taxiway.data.contracts.loader import load_contract
from taxiway.data.contracts.report import ValidationReport
from taxiway.data.contracts.validate import validate
from taxiway.data.findings import Finding
from taxiway.data.sources import Source, open_source
from taxiway.data.sources.delta import DeltaReader
from taxiway.data.sources.file import FileReader
from taxiway.data.sources.nats import NatsReader
from taxiway.engines.duckdb import fetch_one, quote_identifier
from taxiway.engines.sql import SqlEngine, as_engine
from taxiway.errors import ContractViolation
from taxiway.spec.models import DuckDBSource
from taxiway.spec.project import Project

__all__ = [
    "StagedSource",
    "fingerprint",
    "raise_if_blocked",
    "stage_source",
    "stage_sources",
    "staged_result",
]


@dataclass
class StagedSource:
    """A source ready for set-based SQL: ``view`` holds its clean rows."""

    name: str
    view: str
    rows: int
    fingerprint: str
    validation: ValidationReport | None = None
    findings: list[Finding] = field(default_factory=list)
    history: dict[str, Any] | None = None
    """A stream source's history table read: ``{"path", "version"}`` (None for others)."""

    def manifest(self) -> dict[str, Any]:
        """What a training-set manifest records about this source."""
        recorded: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "quarantined": self.validation.quarantined_rows if self.validation else 0,
            "contract": self.validation is not None,
        }
        if self.history is not None:
            recorded["history"] = self.history
        return recorded


def _history(reader: Source) -> dict[str, Any] | None:
    if isinstance(reader, NatsReader) and reader.version is not None:
        return {"path": str(Path(reader.spec.history).resolve()), "version": reader.version}
    if isinstance(reader, DeltaReader) and reader.version is not None:
        return {"path": str(Path(reader.spec.path).resolve()), "version": reader.version}
    return None


def stage_source(
    project: Project,
    con: duckdb.DuckDBPyConnection,
    reader: Source,
    *,
    run_id: str,
    as_of: datetime | None = None,
    staging_dir: Path | None = None,
    keep_quarantine: bool = True,
) -> StagedSource:
    """Register ``reader`` in ``con``, validate it against its contract (quarantining bad rows
    under the state folder) and return the clean view. Raises nothing on `block` findings:
    the caller decides (see :func:`stage_sources`)."""
    raw = f"source_{reader.name}"
    reader.register(con, raw, staging_dir or project.state_dir / "staging" / run_id)
    return staged_result(
        project,
        con,
        reader,
        raw,
        fingerprint(con, reader, raw),
        run_id=run_id,
        as_of=as_of,
        keep_quarantine=keep_quarantine,
    )


def staged_result(
    project: Project,
    engine: duckdb.DuckDBPyConnection | SqlEngine,
    reader: Source,
    raw: str,
    digest: str,
    *,
    run_id: str,
    as_of: datetime | None,
    keep_quarantine: bool,
) -> StagedSource:
    """The :class:`StagedSource` of ``reader``'s rows, registered as ``raw`` in ``engine``
    (DuckDB or Spark): counted when it has no contract, else validated against it (bad rows
    quarantined under the state folder unless ``keep_quarantine`` is false); ``digest`` is its
    :func:`fingerprint`. Raises nothing on `block` findings."""
    declared = reader.spec
    if declared.contract is None:
        counted = f"SELECT count(*) FROM {quote_identifier(raw)}"  # nosec B608
        row = as_engine(engine).fetch_one(counted)
        return StagedSource(
            name=reader.name,
            view=raw,
            rows=int(row[0]) if row else 0,
            fingerprint=digest,
            history=_history(reader),
        )
    report = validate(
        engine,
        raw,
        load_contract(declared.contract),
        source=reader.name,
        quarantine_dir=project.state_dir / "quarantine" / reader.name if keep_quarantine else None,
        run_id=run_id,
        as_of=as_of,
        order_by=declared.timestamp,
    )
    return StagedSource(
        name=reader.name,
        view=report.clean_view or raw,
        rows=report.rows,
        fingerprint=digest,
        validation=report,
        findings=list(report.findings),
        history=_history(reader),
    )


def stage_sources(
    project: Project,
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    *,
    run_id: str,
    as_of: datetime | None = None,
    keep_quarantine: bool = True,
) -> dict[str, StagedSource]:
    """Stage every source in ``names``; raise :class:`ContractViolation` if any blocks.

    ``keep_quarantine=False`` still leaves bad rows out but writes no quarantine file (for
    repeated jobs such as materialization, which would otherwise pile up copies).
    """
    staged = {
        name: stage_source(
            project,
            con,
            open_source(name, project.spec.sources[name]),
            run_id=run_id,
            as_of=as_of,
            keep_quarantine=keep_quarantine,
        )
        for name in names
    }
    raise_if_blocked(staged)
    return staged


def raise_if_blocked(staged: dict[str, StagedSource]) -> None:
    """Raise :class:`ContractViolation` naming every `block` finding of ``staged``."""
    blocking = [f for result in staged.values() for f in result.findings if f.blocks]
    if blocking:
        lines = "; ".join(f"{f.source} · {f.rule}: {f.message}" for f in blocking)
        raise ContractViolation(
            f"blocked by the data contracts: {lines}",
            fix="run `taxiway check` for the details and fix the data (or the contract) first",
        )


def fingerprint(con: duckdb.DuckDBPyConnection, reader: Source, view: str) -> str:
    """A short hash that changes when the source's data changes.

    Files and DuckDB databases are fingerprinted by path, size and modification time (cheap);
    other sources by their content (one scan). The contract's text is part of it too: editing a
    contract can change which rows are clean.
    """
    digest = hashlib.sha256()
    digest.update(reader.spec.model_dump_json(exclude={"description"}).encode())
    if reader.spec.contract is not None and os.path.exists(reader.spec.contract):
        # a changed contract can change which rows are clean: it is part of the data read
        with open(reader.spec.contract, "rb") as contract:
            digest.update(hashlib.sha256(contract.read()).digest())
    if isinstance(reader, FileReader):
        for path in reader.files():
            stat = os.stat(path)
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    elif isinstance(reader, NatsReader) and reader.version is not None:
        # a Delta version never changes once written
        digest.update(f"{reader.spec.history}@{reader.version}".encode())
    elif isinstance(reader, DeltaReader) and reader.version is not None:
        digest.update(f"{reader.spec.path}@{reader.version}".encode())
    elif isinstance(reader.spec, DuckDBSource):
        stat = os.stat(reader.spec.path)
        digest.update(f"{reader.spec.path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        row = fetch_one(
            con,
            f"SELECT count(*), bit_xor(hash(t)) FROM {quote_identifier(view)} AS t",  # nosec B608
        )
        digest.update(repr(row).encode())
    return digest.hexdigest()[:16]
