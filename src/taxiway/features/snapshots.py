"""Training sets as versions of a Delta Lake table: write, read back, compare, retain.

Every training set `taxiway train` builds becomes a new version of one Delta table
(``<state dir>/training/delta/``; delta-rs, no Spark): the whole set, written over the previous
version, so version ``n`` *is* training set ``n`` and stays readable by time travel until
retention vacuums its files. The registry records, per model version, the table's path and
version (:class:`Snapshot`), so `taxiway train --reproduce V` can compare a rebuild with what V
was trained on.

Definitions:

- **content hash**: ``sha256`` of the schema (each column's name and Arrow type) and of DuckDB's
  64-bit hash of every row, the row hashes sorted: the hash of the sorted table, so it does not
  depend on row order or file layout. It is recorded at write time; comparisons recompute it on
  both sides (a DuckDB upgrade may change its hash function).
- **identical**: the same schema and, row by row in order, the same values
  (``pyarrow.Table.equals``). Same rows in another order is reported as such.
- **data version**: a table version written by a training set (operation ``WRITE``); vacuum
  commits also take version numbers but hold no training set.

Retention (:func:`apply_retention`) removes the files of every data version except the newest
``keep_last`` and those named as needed (the versions registered model versions record). The
transaction log is never cleaned: the table is created with
``delta.enableExpiredLogCleanup = false`` because a version whose log entries are gone cannot
be loaded at all, needed or not; the log costs a few kilobytes per version.

>>> import tempfile, pyarrow as pa
>>> folder = Path(tempfile.mkdtemp())
>>> first = write_snapshot(folder / "delta", pa.table({"k": [1, 2], "y": [0.5, 1.5]}))
>>> second = write_snapshot(folder / "delta", pa.table({"k": [1, 2], "y": [0.5, 2.5]}))
>>> first.version, second.version, first.rows
(0, 1, 2)
>>> read_snapshot(first).column("y").to_pylist()
[0.5, 1.5]
>>> diff = compare_tables(read_snapshot(first), read_snapshot(second), keys=["k"])
>>> diff.identical, diff.columns_differing
(False, {'y': 1})
>>> import shutil; shutil.rmtree(folder)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from taxiway.engines.duckdb import connect, fetch_one, quote_identifier
from taxiway.errors import FeatureError

__all__ = [
    "Retention",
    "Snapshot",
    "TableDiff",
    "apply_retention",
    "compare_tables",
    "content_hash",
    "data_versions",
    "read_snapshot",
    "write_snapshot",
]

_TABLE_CONFIG = {"delta.enableExpiredLogCleanup": "false"}
_METADATA_PREFIX = "taxiway."


@dataclass(frozen=True)
class Snapshot:
    """One training set as a Delta table version: where, which version, what it holds."""

    path: str
    version: int
    rows: int
    content_hash: str
    schema: list[list[str]] = field(default_factory=list)
    """Each column's ``[name, Arrow type]``, as written."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded in the manifest and the registry's ``training``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """The inverse of :meth:`as_dict`."""
        return cls(
            path=str(data["path"]),
            version=int(data["version"]),
            rows=int(data["rows"]),
            content_hash=str(data["content_hash"]),
            schema=[list(pair) for pair in data.get("schema", [])],
        )


def write_snapshot(
    path: Path, table: pa.Table, *, metadata: Mapping[str, str] | None = None
) -> Snapshot:
    """Write ``table`` as the next version of the Delta table at ``path`` (created if absent).

    The version replaces the previous one's contents (its files stay until retention removes
    them); ``metadata`` goes into the commit as ``taxiway.<key>`` (see the table's history).
    """
    path = Path(path)
    digest = content_hash(table)
    info = {f"{_METADATA_PREFIX}{k}": v for k, v in (metadata or {}).items()}
    info[f"{_METADATA_PREFIX}content_hash"] = digest
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(path),
            table,
            mode="overwrite",
            schema_mode="overwrite",
            configuration=_TABLE_CONFIG,
            commit_properties=CommitProperties(custom_metadata=info),
        )
        version = DeltaTable(str(path)).version()
    except Exception as error:  # delta-rs raises plain Exception subclasses (DeltaError, ...)
        raise FeatureError(
            f"the training set cannot be written as a Delta version in {path}: "
            f"{_first_line(error)}",
            fix="check the disk space and permissions of the state folder; a column type "
            "Delta Lake cannot store (time of day, unsigned integers) needs a cast in the spec",
        ) from None
    return Snapshot(
        path=str(path.resolve()),
        version=version,
        rows=table.num_rows,
        content_hash=digest,
        schema=_schema_pairs(table.schema),
    )


def read_snapshot(snapshot: Snapshot) -> pa.Table:
    """The training set of ``snapshot``, as written (delta-rs reads back the Arrow types it
    was given: tests/features/test_delta_snapshots.py checks a training set's).

    Raises :class:`FeatureError` when the table or the version is gone, or its files were
    vacuumed.
    """
    where = Path(snapshot.path)
    if not DeltaTable.is_deltatable(str(where)):
        raise FeatureError(
            f"no Delta table at {where}: the training-set snapshots were moved or deleted",
            fix="restore the state folder's training/delta/ from a backup",
        )
    try:
        table = DeltaTable(str(where), version=snapshot.version).to_pyarrow_table()
    except FileNotFoundError:
        raise FeatureError(
            f"version {snapshot.version} of the training-set table {where} has no files "
            "left: retention vacuumed them",
            fix="keep the model version registered (not archived), or raise "
            "model.snapshots.keep_last, so its training set is kept",
        ) from None
    except Exception as error:  # delta-rs: DeltaError, TableNotFoundError, ...
        raise FeatureError(
            f"version {snapshot.version} of the training-set table {where} cannot be read: "
            f"{_first_line(error)}",
            fix="check that the version exists (`taxiway models show` names it)",
        ) from None
    return table


def data_versions(path: Path) -> list[int]:
    """The versions of the table at ``path`` that hold a training set, oldest first."""
    if not DeltaTable.is_deltatable(str(path)):
        return []
    history = DeltaTable(str(path)).history()
    return sorted(int(h["version"]) for h in history if h.get("operation") == "WRITE")


@dataclass(frozen=True)
class Retention:
    """What :func:`apply_retention` did."""

    kept: list[int]
    """The data versions whose files are kept."""
    gone: list[int]
    """The other data versions: their files are gone (removed now or by an earlier run)."""
    files_removed: int
    """Files this run removed."""


def apply_retention(path: Path, *, keep_last: int | None, needed: Iterable[int]) -> Retention:
    """Vacuum the files of every data version but the newest ``keep_last`` and ``needed``.

    With ``keep_last`` None nothing is removed. Run it where no other process writes the same
    table: a full vacuum with no grace period also removes files a writer has not committed.
    """
    versions = data_versions(path)
    if keep_last is None or not versions:
        return Retention(kept=versions, gone=[], files_removed=0)
    kept = set(versions[-keep_last:]) | (set(needed) & set(versions))
    table = DeltaTable(str(path))
    try:
        removed = table.vacuum(
            retention_hours=0,
            dry_run=False,
            enforce_retention_duration=False,
            full=True,
            keep_versions=sorted(kept),
        )
    except Exception as error:  # delta-rs: DeltaError, ...
        raise FeatureError(
            f"cannot vacuum the training-set table {path}: {_first_line(error)}",
            fix="check the permissions of the state folder",
        ) from None
    gone = [v for v in versions if v not in kept]
    return Retention(kept=sorted(kept), gone=gone, files_removed=len(removed))


# --------------------------------------------------------------------------- comparing


def content_hash(table: pa.Table) -> str:
    """The row-order-independent hash of ``table`` (see the module docstring).

    >>> content_hash(pa.table({"a": [1, 2]})) == content_hash(pa.table({"a": [2, 1]}))
    True
    >>> content_hash(pa.table({"a": [1, 2]})) == content_hash(pa.table({"a": [1, 3]}))
    False
    """
    digest = hashlib.sha256()
    for name, kind in _schema_pairs(table.schema):
        digest.update(f"{name}\x1f{kind}\x1e".encode())
    con = connect()
    try:
        con.register("__snapshot", table)
        row = fetch_one(
            con,
            "SELECT count(*), coalesce(string_agg(h::VARCHAR, ',' ORDER BY h), '') "
            "FROM (SELECT hash(t) AS h FROM __snapshot AS t)",
        )
    finally:
        con.close()
    assert row is not None  # nosec B101
    digest.update(f"{row[0]}\x1e{row[1]}".encode())
    return digest.hexdigest()


@dataclass
class TableDiff:
    """How a rebuilt training set differs from a recorded one (empty fields: no difference)."""

    identical: bool
    rows: tuple[int, int]
    """(recorded, rebuilt) row counts."""
    hashes: tuple[str, str]
    """(recorded, rebuilt) content hashes."""
    columns_only_recorded: list[str] = field(default_factory=list)
    columns_only_rebuilt: list[str] = field(default_factory=list)
    types_differing: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Column → (recorded type, rebuilt type)."""
    column_order_differs: bool = False
    nullability_differs: list[str] = field(default_factory=list)
    """Columns that may hold nulls on one side and are declared not null on the other."""
    rows_only_recorded: int = 0
    """Rows (over the common columns) of the recorded set missing from the rebuild."""
    rows_only_rebuilt: int = 0
    columns_differing: dict[str, int] = field(default_factory=dict)
    """Column → how many of its (keys, column) rows differ between the two."""
    order_differs: bool = False
    """Same rows, other order."""

    def describe(self) -> list[str]:
        """Each difference in one line, in words (empty when identical)."""
        lines: list[str] = []
        recorded, rebuilt = self.rows
        if recorded != rebuilt:
            lines.append(f"rows: {recorded:,} recorded, {rebuilt:,} rebuilt")
        if self.columns_only_recorded:
            lines.append(
                "columns missing from the rebuild: " + ", ".join(self.columns_only_recorded)
            )
        if self.columns_only_rebuilt:
            lines.append("columns new in the rebuild: " + ", ".join(self.columns_only_rebuilt))
        for name, (old, new) in self.types_differing.items():
            lines.append(f"column {name}: type {old} recorded, {new} rebuilt")
        if self.column_order_differs:
            lines.append("the columns are in another order")
        if self.nullability_differs:
            lines.append("nullability differs: " + ", ".join(self.nullability_differs))
        if self.rows_only_recorded or self.rows_only_rebuilt:
            lines.append(
                f"{self.rows_only_recorded:,} recorded rows are not in the rebuild and "
                f"{self.rows_only_rebuilt:,} rebuilt rows are not in the record"
            )
        for name, count in self.columns_differing.items():
            lines.append(f"column {name}: {count:,} values differ")
        if self.order_differs:
            lines.append("the same rows, in another order")
        if not lines and not self.identical:
            lines.append("the values differ in a way the row comparison does not show")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with :meth:`describe`'s lines under ``differences``."""
        data = asdict(self)
        data["differences"] = self.describe()
        return data


def compare_tables(recorded: pa.Table, rebuilt: pa.Table, *, keys: list[str]) -> TableDiff:
    """What differs between ``recorded`` and ``rebuilt``; ``keys`` (those present in both)
    identify a row when a column's values are compared."""
    hashes = (content_hash(recorded), content_hash(rebuilt))
    identical = bool(
        recorded.schema.equals(rebuilt.schema, check_metadata=False) and recorded.equals(rebuilt)
    )
    diff = TableDiff(identical, (recorded.num_rows, rebuilt.num_rows), hashes)
    if identical:
        return diff
    old, new = dict(_schema_pairs(recorded.schema)), dict(_schema_pairs(rebuilt.schema))
    diff.columns_only_recorded = [c for c in old if c not in new]
    diff.columns_only_rebuilt = [c for c in new if c not in old]
    common = [c for c in old if c in new]
    diff.types_differing = {c: (old[c], new[c]) for c in common if old[c] != new[c]}
    diff.column_order_differs = common != [c for c in new if c in old]
    diff.nullability_differs = [
        c for c in common if recorded.schema.field(c).nullable != rebuilt.schema.field(c).nullable
    ]
    comparable = [c for c in common if c not in diff.types_differing]
    if not comparable:
        return diff
    con = connect()
    try:
        con.register("__recorded", recorded.select(comparable))
        con.register("__rebuilt", rebuilt.select(comparable))
        diff.rows_only_recorded = _except_count(con, "__recorded", "__rebuilt", comparable)
        diff.rows_only_rebuilt = _except_count(con, "__rebuilt", "__recorded", comparable)
        if diff.rows_only_recorded or diff.rows_only_rebuilt:
            ids = [k for k in keys if k in comparable]
            values = [c for c in comparable if c not in ids]
            # one scan per side finds the columns that differ; only those are counted
            suspects = [
                column
                for column, old_sum, new_sum in zip(
                    values,
                    _column_sums(con, "__recorded", ids, values),
                    _column_sums(con, "__rebuilt", ids, values),
                    strict=True,
                )
                if old_sum != new_sum
            ]
            for column in suspects:
                count = _except_count(con, "__recorded", "__rebuilt", [*ids, column])
                if count:
                    diff.columns_differing[column] = count
    except duckdb.Error as error:
        raise FeatureError(
            f"the training sets cannot be compared: {_first_line(error)}",
            fix="report this with the two versions' schemas",
        ) from None
    finally:
        con.close()
    same_shape = not (
        diff.columns_only_recorded
        or diff.columns_only_rebuilt
        or diff.types_differing
        or diff.column_order_differs
    )
    if same_shape and not (diff.rows_only_recorded or diff.rows_only_rebuilt):
        diff.order_differs = not recorded.cast(rebuilt.schema).equals(rebuilt)
    return diff


def _column_sums(con: Any, table: str, ids: list[str], columns: list[str]) -> list[int]:
    """Per column, the sum of the hashes of (``ids``, column) over the rows: equal multisets
    of those pairs give equal sums."""
    if not columns:
        return []
    key = "".join(f"{quote_identifier(k)}, " for k in ids)
    sums = ", ".join(f"sum(hash({key}{quote_identifier(c)})::HUGEINT)" for c in columns)
    row = fetch_one(con, f"SELECT {sums} FROM {table}")  # nosec B608
    return [int(v or 0) for v in row] if row else [0] * len(columns)


def _except_count(con: Any, left: str, right: str, columns: list[str]) -> int:
    listed = ", ".join(quote_identifier(c) for c in columns)
    row = fetch_one(
        con,
        f"SELECT count(*) FROM (SELECT {listed} FROM {left} EXCEPT ALL "  # nosec B608
        f"SELECT {listed} FROM {right})",
    )
    return int(row[0]) if row else 0


def _schema_pairs(schema: pa.Schema) -> list[list[str]]:
    return [[f.name, str(f.type)] for f in schema]


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
