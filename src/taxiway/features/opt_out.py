"""The opt-out list: the entity keys of units that must never be scored by the model.

``governance.opt_out: {source: NAME}`` names a declared source (a file, a DuckDB or
PostgreSQL table) whose rows hold the key column(s) of the opt-out entity (``entity:``,
default the spine's). Its definition, used alike in training and in serving:

- A unit is *opted out* when some row of the source holds its key: every key column equal,
  compared as text (``100017`` and ``"100017"`` are one customer), as the online store
  encodes keys (:func:`~taxiway.features.materialize.encode_key`). A row with a null key
  column opts no one out.
- Training: every spine row of an opted-out unit is left out of the training set, whatever
  its time (the list is read as it stands when the set is built), and counted in the
  manifest's ``dropped.opt_out``. The source is one of the set's sources, so a changed list
  changes the set's fingerprint and the set is built again.
- Serving: the request's key for the entity is looked up in the list as last read; the list
  is read again every ``refresh`` (see :mod:`taxiway.serving.opt_out`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taxiway.data.sources import open_source
from taxiway.engines.duckdb import connect, quote_identifier
from taxiway.engines.sql import SqlEngine
from taxiway.errors import FeatureError
from taxiway.features.materialize import encode_key
from taxiway.spec.models import ColumnLabel, OptOut, TaxiwaySpec

__all__ = ["exclude_opted_out", "opt_out_entity", "read_opt_out_keys"]


def opt_out_entity(spec: TaxiwaySpec) -> str:
    """The entity whose keys the opt-out list holds: ``entity:``, else the spine's."""
    opt_out = _opt_out(spec)
    if opt_out.entity is not None:
        return opt_out.entity
    spine = spec.spine
    entity = spine.entity if spine is not None else None
    if entity is None and spec.label is not None and not isinstance(spec.label, ColumnLabel):
        entity = spec.label.entity
    if entity is None:
        raise FeatureError(
            "governance.opt_out names no entity and the spec has no spine entity to default to",
            fix="add `entity:` to governance.opt_out",
        )
    return entity


def read_opt_out_keys(spec: TaxiwaySpec, staging_dir: Path) -> frozenset[str]:
    """Every opted-out unit's encoded key, read from the source now."""
    opt_out = _opt_out(spec)
    keys = spec.entity_keys(opt_out_entity(spec))
    reader = open_source(opt_out.source, spec.sources[opt_out.source])
    con = connect()
    try:
        reader.register(con, "__opt_out", staging_dir)
        _require_keys(con, "__opt_out", keys, opt_out.source)
        q = quote_identifier
        columns = ", ".join(f"CAST({q(k)} AS VARCHAR)" for k in keys)
        present = " AND ".join(f"{q(k)} IS NOT NULL" for k in keys)
        rows = con.execute(f"SELECT DISTINCT {columns} FROM __opt_out WHERE {present}").fetchall()
    finally:
        con.close()
    return frozenset(encode_key(tuple(row)) for row in rows)


def exclude_opted_out(engine: SqlEngine, spec: TaxiwaySpec, source_view: str, spine: str) -> int:
    """Remove the opted-out units' rows from the spine table ``spine`` (its key columns named
    as the entity's) on ``engine`` (DuckDB or Spark); return how many were removed."""
    opt_out = _opt_out(spec)
    keys = spec.entity_keys(opt_out_entity(spec))
    _require(set(engine.columns(source_view)), keys, opt_out.source)
    if not set(keys) <= set(engine.columns(spine)):
        raise FeatureError(
            f"the opt-out list holds keys of `{opt_out_entity(spec)}`, which is not the "
            "spine's entity: its rows cannot be matched to training rows",
            fix="set governance.opt_out.entity to the spine's entity (and the list's columns "
            "to its key columns)",
        )
    q = quote_identifier
    match = " AND ".join(f"CAST(o.{q(k)} AS VARCHAR) = CAST(s.{q(k)} AS VARCHAR)" for k in keys)
    before = _count(engine, spine)
    kept = f"{spine}__kept"
    engine.create_table(
        kept,
        f"SELECT s.* FROM {q(spine)} AS s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {q(source_view)} AS o WHERE {match})",
    )
    engine.create_table(spine, f"SELECT * FROM {q(kept)}")
    engine.drop_table(kept)
    return before - _count(engine, spine)


def _count(engine: SqlEngine, table: str) -> int:
    row = engine.fetch_one(f"SELECT count(*) FROM {quote_identifier(table)}")
    return int(row[0]) if row else 0


def _opt_out(spec: TaxiwaySpec) -> OptOut:
    opt_out = spec.governance.opt_out if spec.governance is not None else None
    if opt_out is None:
        raise FeatureError("the spec has no governance.opt_out", fix="add governance.opt_out")
    return opt_out


def _require_keys(con: Any, view: str, keys: tuple[str, ...], source: str) -> None:
    described = con.execute(f"DESCRIBE {quote_identifier(view)}").fetchall()
    _require({str(row[0]) for row in described}, keys, source)


def _require(present: set[str], keys: tuple[str, ...], source: str) -> None:
    missing = [k for k in keys if k not in present]
    if missing:
        raise FeatureError(
            f"the opt-out source `{source}` has no column {', '.join(missing)} "
            f"(it has: {', '.join(sorted(present))})",
            fix="give the opt-out list the entity's key column(s), named as in `entities:`",
        )
