"""The durable prediction log: every answered prediction is on disk before its answer leaves.

Records are JSON lines, one file per writer at a time
(``predictions-<worker>-<UTC start>-<seq>.jsonl``), so several worker processes never share a
file. One writer thread per log commits in groups: every record that arrives while a batch is
being written and ``fdatasync``-ed waits for the next batch, and each batch is one ``write``
plus one ``fdatasync``, however many records it holds. :meth:`PredictionLog.append` returns
only when its record's batch is durable, and raises :class:`~taxiway.errors.ServingError`
when it cannot be written, so the server answers 503 instead of an unlogged prediction.

What survives is ``sync``'s choice, stated per failure:

* ``always``: each batch is written and ``fdatasync``-ed before its records are acknowledged
  (this is the mode that uses the writer thread and its group commit), and a new file's name is
  ``fsync``-ed into its folder before a record goes into it. *Process killed (SIGKILL, OOM)*:
  every acknowledged record survives. *Power loss or kernel crash*: every acknowledged record
  survives, as far as the disk honours ``fdatasync`` (a drive whose volatile cache lies about
  flushes voids this). Every answer waits for the disk.
* ``interval`` (the default): the caller writes its record to the OS itself (one ``write`` of a
  line to the page cache, microseconds: cheaper than handing it to a thread and back), and is
  acknowledged then. *Process killed*: every acknowledged record survives, since the page cache
  belongs to the kernel, not the process. *Power loss or kernel crash*: the records written
  since the last completed ``fdatasync`` may be lost. A syncer thread ``fdatasync``-s the open
  file every ``sync_interval`` seconds, and a rotated file (and a new file's folder entry) as
  soon as it is handed over, so the loss is normally the last ``sync_interval`` plus the time a
  sync takes; a disk slower than that widens it, and nothing bounds it.
* ``never``: written to the OS the same way. *Process killed*: every acknowledged record
  survives. *Power loss or kernel crash*: whatever the OS had not written back yet is lost,
  file names included (Linux writes back dirty pages within about 30 s by default; taxiway
  promises nothing).

In every mode a record that was never acknowledged may or may not be in the file, and a kill
may leave a torn last line, which the readers skip.

Rotating never flushes on the caller's thread (an event loop, in the service): with
``interval`` the old file is handed to the syncer thread, which ``fdatasync``-s and closes it,
and expired files are deleted there too; with ``never`` it is only closed; with ``always`` the
writer thread rotates.

The parts: :mod:`~taxiway.serving.log_files` (naming, opening, rotating, syncing and deleting
the files), :mod:`~taxiway.serving.log_writer` (the group-commit writer and the direct one) and
:mod:`~taxiway.serving.log_reader` (counting the records, a DuckDB view over them).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp, PredictionLog(Path(tmp), worker="w1") as log:
...     log.append_sync({"request_id": "r1", "prediction": 0.25})
...     log.append_sync({"request_id": "r2", "prediction": 0.75})
...     count_records(Path(tmp)), log.stats()["records"], log_files(Path(tmp))[0].name[:15]
(2, 2, 'predictions-w1-')
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypedDict

import orjson

from taxiway.errors import ServingError
from taxiway.serving.log_files import Sync, log_files
from taxiway.serving.log_reader import count_records, read_predictions
from taxiway.serving.log_writer import DirectWrites, GroupCommit, _Forks
from taxiway.spec.models import PredictionLogSpec

__all__ = [
    "MASK",
    "LogStats",
    "PredictionLog",
    "Sync",
    "count_records",
    "log_files",
    "mask",
    "open_prediction_log",
    "read_predictions",
]

MASK = "***"
"""What a PII value is replaced with in the log."""

MiB = 1024 * 1024
_MASKED_FIELDS = ("entities", "features", "request")
_WORKER = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*")
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class LogStats(TypedDict):
    """Counters of one log since it was opened (for ``/metrics``)."""

    records: int
    batches: int
    bytes: int
    errors: int
    pending: int
    last_batch_records: int
    last_commit_seconds: float
    commit_seconds_total: float
    syncs: int
    sync_errors: int
    last_sync_seconds: float
    files_opened: int
    files_expired: int
    file: str | None


def mask(record: Mapping[str, Any], pii: Collection[str]) -> dict[str, Any]:
    """``record`` with the PII values of its ``entities``, ``features`` and ``request`` masked.

    A key of one of those three mappings whose name is in ``pii`` gets :data:`MASK` as its
    value; a missing value (None) stays None, since that it is missing reveals nothing and
    monitoring counts it. Other fields are kept as they are, and ``record`` is not changed.

    >>> mask({"request": {"email": "a@b.c", "age": 31}, "features": {"email": None},
    ...       "email": "top-level fields are the caller's", "prediction": 0.2}, {"email"})
    {'request': {'email': '***', 'age': 31}, 'features': {'email': None}, 'email': "top-level fields are the caller's", 'prediction': 0.2}
    """
    masked = dict(record)
    for name in _MASKED_FIELDS:
        values = masked.get(name)
        if isinstance(values, Mapping) and any(key in pii for key in values):
            masked[name] = {
                key: MASK if key in pii and value is not None else value
                for key, value in values.items()
            }
    return masked


class PredictionLog(GroupCommit, DirectWrites):
    """An append-only, group-committed log of prediction records in ``folder``.

    ``worker`` names this writer in its file names (default: the pid and a random suffix, so
    two processes, or a restarted one, never write one file). A file beyond ``rotate_bytes``
    is closed and a new one started; with ``retention``, files not written for that long are
    deleted (at start, on rotation and hourly). ``sync`` says when the file is
    ``fdatasync``-ed (see the module's text): ``always`` before acknowledging, ``interval``
    every ``sync_interval`` seconds off the answer path, ``never``. At most ``max_pending``
    records wait for a commit; further appends wait for room.

    Opening creates the folder and the first file, so a log that cannot be written fails when
    the service starts rather than on its first request. Use one log per process: a log
    inherited through ``fork`` refuses to append.
    """

    def __init__(
        self,
        folder: Path,
        *,
        worker: str | None = None,
        rotate_bytes: int = 64 * MiB,
        retention: timedelta | None = None,
        sync: Sync = "interval",
        sync_interval: float = 0.2,
        pii: Collection[str] = (),
        max_pending: int = 10_000,
    ) -> None:
        if worker is not None and not _WORKER.fullmatch(worker):
            raise ServingError(
                f"the prediction log's worker name {worker!r} cannot be part of a file name",
                fix="use letters, digits, '_', '.' and single '-' only",
            )
        if rotate_bytes <= 0 or max_pending <= 0:
            raise ServingError("rotate_bytes and max_pending of a prediction log must be > 0")
        if sync not in ("always", "interval", "never"):
            raise ServingError(
                f"the prediction log's sync must be always, interval or never, not {sync!r}"
            )
        if sync_interval <= 0:
            raise ServingError("the sync interval of a prediction log must be > 0")
        if retention is not None and retention <= timedelta(0):
            raise ServingError("the retention of a prediction log must be positive")
        super().__init__(
            folder,
            worker=worker,
            rotate_bytes=rotate_bytes,
            retention=retention,
            sync=sync,
            sync_interval=sync_interval,
            max_pending=max_pending,
        )
        self._pii = frozenset(pii)
        try:
            self._open_file()
        except OSError as error:
            raise self._failure(error) from None
        self._delete_expired()
        self._thread: threading.Thread | None = None
        self._syncer: threading.Thread | None = None
        if not self._direct:
            self._thread = threading.Thread(
                target=self._run, name=f"taxiway-prediction-log-{self.worker}", daemon=True
            )
            self._thread.start()
        elif sync == "interval" or self._housekeeping_s is not None:
            self._syncer = threading.Thread(
                target=self._sync_periodically,
                name=f"taxiway-prediction-log-sync-{self.worker}",
                daemon=True,
            )
            self._syncer.start()

    # ------------------------------------------------------------------ appending

    async def append(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` and return once it is durable (written; synced if ``sync: always``).

        Raises :class:`ServingError` if its batch could not be written; later appends retry
        the disk. Cancelling the caller does not withdraw a record already queued.
        """
        line = self._line(record)
        if self._direct:
            self._append_direct(line)
            return
        await self._append_grouped(line)

    def append_sync(self, record: Mapping[str, Any]) -> None:
        """:meth:`append` for threads: blocks until ``record`` is durable.

        Do not call it on an event loop's thread; it would stall every request meanwhile.
        """
        line = self._line(record)
        if self._direct:
            self._append_direct(line)
            return
        self._append_grouped_sync(line)

    def _line(self, record: Mapping[str, Any]) -> bytes:
        if self._pii:
            record = mask(record, self._pii)
        try:
            return orjson.dumps(record, default=str, option=_JSON_OPTIONS)
        except orjson.JSONEncodeError as error:
            raise ServingError(
                f"a prediction record cannot be written as JSON: {error}",
                fix="log only JSON-compatible values (numbers, strings, lists, mappings)",
            ) from None

    # ------------------------------------------------------------------ the rest

    @property
    def path(self) -> Path | None:
        """The file being written now (None between a failure and the next batch)."""
        return self._path if self._fd is not None else None

    def stats(self) -> LogStats:
        """Counters since the log was opened: records, batches, bytes, commit times..."""
        with self._wake:
            pending = len(self._batch.lines)
        path = self.path
        return LogStats(
            records=self._records,
            batches=self._batches,
            bytes=self._bytes,
            errors=self._errors,
            pending=pending,
            last_batch_records=self._last_batch,
            last_commit_seconds=self._last_commit,
            commit_seconds_total=self._commit_total,
            syncs=self._syncs,
            sync_errors=self._sync_errors,
            last_sync_seconds=self._last_sync,
            files_opened=self._files_opened,
            files_expired=self._files_expired,
            file=None if path is None else str(path),
        )

    def close(self) -> None:
        """Commit every queued record, stop the writer thread and close the file. Idempotent."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        same_process = _Forks.count == self._generation
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and same_process:
            thread.join()
        if self._direct and same_process:
            with self._fd_lock:
                self._close_file()  # interval: handed to the syncer, which syncs it as it stops
        self._syncer_stop.set()
        self._syncer_wake.set()
        if self._syncer is not None and same_process:
            self._syncer.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PredictionLog({str(self.folder)!r}, worker={self.worker!r})"


def open_prediction_log(
    spec: PredictionLogSpec, *, state_dir: Path, pii: Collection[str] = ()
) -> PredictionLog:
    """The log ``spec`` describes; its folder defaults to ``<state dir>/predictions``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     log = open_prediction_log(PredictionLogSpec(rotate_mb=1), state_dir=Path(tmp))
    ...     log.close()
    ...     log.folder.name, log.rotate_bytes
    ('predictions', 1048576)
    """
    folder = Path(spec.path) if spec.path else Path(state_dir) / "predictions"
    return PredictionLog(
        folder,
        rotate_bytes=max(1, int(spec.rotate_mb * MiB)),
        retention=spec.retention,
        sync=spec.sync,
        sync_interval=spec.sync_interval.total_seconds(),
        pii=pii,
    )
