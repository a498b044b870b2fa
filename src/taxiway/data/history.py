"""The offline history of a stream or CDC source: a Delta Lake table appended once per batch.

``taxiway features stream`` appends each applied batch of a ``kind: nats`` source, and each
batch of transactions of a ``cdc: true`` postgres source, to the source's ``history:`` folder,
a Delta table (delta-rs). Each append carries a Delta *application transaction*
``(app_id, version)``: the writer's id (the source's name) and the batch's number (a stream's
batch counter, a CDC batch's last commit LSN), both increasing. :func:`append_history` writes
nothing when the table already records that version or a later one for ``app_id``, so a batch
redone after a crash is never appended twice. The check and the append are not one atomic step:
one writer per history folder (the stream consumer's own rule). A :class:`HistoryWriter`
compacts the table's small files every few hundred appends (a version that moves no row).

Training reads the history through :func:`read_history` (the newest version, or a pinned one),
and records the version it read among the model's inputs (see
:mod:`taxiway.data.stage`).

>>> import tempfile, pyarrow as pa, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "history"
>>> append_history(folder, pa.table({"k": [1, 2]}), app_id="orders", version=1)
0
>>> append_history(folder, pa.table({"k": [1, 2]}), app_id="orders", version=1) is None  # redo
True
>>> append_history(folder, pa.table({"k": [3]}), app_id="orders", version=2)
1
>>> applied_version(folder, "orders"), read_history(folder).num_rows
(2, 3)
>>> read_history(folder, version=0).num_rows
2
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from taxiway.errors import SourceError

__all__ = [
    "HistoryWriter",
    "append_history",
    "applied_version",
    "history_files",
    "history_version",
    "is_history",
    "read_history",
]

logger = logging.getLogger("taxiway.history")

# the log of every version stays (a version whose log entries are gone cannot be loaded)
_TABLE_CONFIG = {"delta.enableExpiredLogCleanup": "false"}
# a writer compacts the table's small files every this many appends: delta-rs's append costs
# CPU in proportion to the table's files (on this project's 2-core machine: 7 ms per append
# of 500 rows to a new table, 28 ms after 400 appends, back to 10 ms once compacted)
COMPACT_EVERY = 200


def _require_deltalake() -> None:
    try:
        import deltalake  # noqa: F401
    except ImportError:
        raise SourceError(
            "the stream history is a Delta Lake table and deltalake is not installed",
            fix="pip install 'taxiway[stream]'",
        ) from None


def is_history(path: Path) -> bool:
    """Whether ``path`` holds a Delta table (a history written at least once)."""
    _require_deltalake()
    from deltalake import DeltaTable

    return bool(DeltaTable.is_deltatable(str(path)))


def applied_version(path: Path, app_id: str) -> int | None:
    """The last batch version ``app_id`` appended to the history at ``path`` (None: none)."""
    if not is_history(path):
        return None
    from deltalake import DeltaTable

    found = DeltaTable(str(path)).transaction_version(app_id)
    return None if found is None else int(found)


def history_version(path: Path) -> int | None:
    """The newest Delta version of the history at ``path`` (None when there is none yet)."""
    if not is_history(path):
        return None
    from deltalake import DeltaTable

    return int(DeltaTable(str(path)).version())


def append_history(
    path: Path, table: pa.Table, *, app_id: str, version: int, overwrite: bool = False
) -> int | None:
    """Append ``table`` as batch ``version`` of ``app_id``; return the new Delta version, or
    None when the history already holds that batch (or a later one) of ``app_id``.

    ``overwrite`` replaces the table's rows instead (a CDC source's first snapshot), whatever
    batch it records."""
    writer = HistoryWriter(path, app_id)
    if not writer.append(table, version, overwrite=overwrite):
        return None
    return history_version(path)


class HistoryWriter:
    """The appends of one writer (``app_id``) to the history at ``path``: the batch version
    the table records is read once, then kept in memory (one writer per history), and the
    Delta table stays open between appends (re-opening it cost a third of each append; delta-rs
    updates the open table's state on each commit it makes, and a commit another writer made
    in between is caught by delta-rs's conflict check, not lost).

    Every ``compact_every`` appends it compacts the table's small files (Delta ``OPTIMIZE``,
    a version of its own that changes no row: every version stays readable as it was), so an
    append's cost stays flat instead of growing with the files of every batch before it. A
    failed compaction is logged and left for the next turn: the append it follows stands."""

    def __init__(self, path: Path, app_id: str, *, compact_every: int = COMPACT_EVERY) -> None:
        self.path = Path(path)
        self.app_id = app_id
        self.compact_every = compact_every
        self._appends = 0  # since the last compaction (or the start)
        self.recorded = applied_version(self.path, app_id)
        """The last batch version of ``app_id`` in the table (None: none yet)."""
        self._table: Any = None  # the open DeltaTable, once the table exists

    def __repr__(self) -> str:
        return f"HistoryWriter({str(self.path)!r}, {self.app_id!r})"

    def append(self, table: pa.Table, version: int, *, overwrite: bool = False) -> bool:
        """:func:`append_history` for this writer; False when the batch is recorded."""
        if not overwrite and self.recorded is not None and self.recorded >= version:
            return False
        _require_deltalake()
        from deltalake import CommitProperties, Transaction, write_deltalake

        try:
            if self._table is None:
                self.path.mkdir(parents=True, exist_ok=True)
                self._table = _open(self.path)
            write_deltalake(
                str(self.path) if self._table is None else self._table,
                table,
                mode="overwrite" if overwrite else "append",
                schema_mode="overwrite" if overwrite else "merge",
                configuration=_TABLE_CONFIG,
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(self.app_id, version)],
                    custom_metadata={"taxiway.batch": str(version), "taxiway.source": self.app_id},
                ),
            )
        except Exception as error:  # delta-rs raises plain Exception subclasses (DeltaError)
            self._table = None  # re-read the table on the next append
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SourceError(
                f"the history of `{self.app_id}` cannot be appended to {self.path}: {first}",
                fix="check the disk space and permissions of the history folder; a field whose "
                "type changed between events (text, then a number) needs a contract that types it",
            ) from None
        self.recorded = version
        self._appends += 1
        if self._appends >= self.compact_every and self._table is not None:
            self._compact()
        return True

    def _compact(self) -> None:
        self._appends = 0
        try:
            self._table.optimize.compact()
        except Exception as error:  # delta-rs raises plain Exception subclasses (DeltaError)
            self._table = None  # re-read the table on the next append
            logger.warning("the history at %s was not compacted (next turn): %s", self.path, error)


def _open(path: Path) -> Any:
    """The Delta table at ``path``, or None when there is none yet (the first append makes it)."""
    from deltalake import DeltaTable

    return DeltaTable(str(path)) if DeltaTable.is_deltatable(str(path)) else None


def read_history(path: Path, version: int | None = None) -> pa.Table:
    """The history at ``path`` as of ``version`` (the newest when None)."""
    _require_deltalake()
    from deltalake import DeltaTable

    try:
        return DeltaTable(str(path), version=version).to_pyarrow_table()
    except Exception as error:  # delta-rs: TableNotFoundError, DeltaError, ...
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SourceError(
            f"cannot read the history {path} (version {version or 'newest'}): {first}",
            fix="run `taxiway features stream` to write it, or check `history:`",
        ) from None


def history_files(path: Path, version: int) -> list[str]:
    """The Parquet files holding version ``version`` of the history at ``path`` (appends
    only: no deletion vectors, so the files' rows are the version's rows)."""
    _require_deltalake()
    from deltalake import DeltaTable

    try:
        return [str(uri) for uri in DeltaTable(str(path), version=version).file_uris()]
    except Exception as error:  # delta-rs: TableNotFoundError, DeltaError, ...
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SourceError(
            f"cannot read the history {path} (version {version}): {first}",
            fix="run `taxiway features stream` to write it, or check `history:`",
        ) from None
