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
may leave a torn last line, which the readers below skip.

Rotating never flushes on the caller's thread (an event loop, in the service): with
``interval`` the old file is handed to the syncer thread, which ``fdatasync``-s and closes it,
and expired files are deleted there too; with ``never`` it is only closed; with ``always`` the
writer thread rotates.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp, PredictionLog(Path(tmp), worker="w1") as log:
...     log.append_sync({"request_id": "r1", "prediction": 0.25})
...     log.append_sync({"request_id": "r2", "prediction": 0.75})
...     count_records(Path(tmp)), log.stats()["records"], log_files(Path(tmp))[0].name[:15]
(2, 2, 'predictions-w1-')
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import secrets
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypedDict

import orjson

from taxiway.engines.duckdb import quote_identifier, quote_literal
from taxiway.errors import ServingError
from taxiway.spec.models import PredictionLogSpec

if TYPE_CHECKING:
    import duckdb

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
_FILE = re.compile(r"predictions-(?P<worker>.+)-(?P<start>\d{8}T\d{6})-(?P<seq>\d+)\.jsonl")
_GLOB = "predictions-*.jsonl"
_ALL_NULL = r'\{("(?:[^"\\]|\\.)*":null,?)*\}'  # {"a":null,"b":null}: a torn line in DuckDB
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_HOUSEKEEPING_S = 3600.0

Sync = Literal["always", "interval", "never"]


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


@dataclass(eq=False)
class _Batch:
    """The records committed together, and who waits for them."""

    lines: list[bytes] = field(default_factory=list)
    event: threading.Event | None = None  # created when a thread (append_sync) waits
    waiters: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = field(
        default_factory=dict
    )
    error: BaseException | None = None


class _Forks:
    """How many forks led to this process: a log opened before a fork is the parent's.

    Counted by an ``at_fork`` hook, so the check on every append is an attribute read, not a
    ``getpid`` system call.
    """

    count = 0

    @classmethod
    def forked(cls) -> None:
        cls.count += 1


os.register_at_fork(after_in_child=_Forks.forked)


class PredictionLog:
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
        self.folder = Path(folder)
        self.worker = worker or f"{os.getpid()}-{secrets.token_hex(3)}"
        self.rotate_bytes = rotate_bytes
        self.retention = retention
        self.sync: Sync = sync
        self.sync_interval = sync_interval
        self.max_pending = max_pending
        self._pii = frozenset(pii)
        self._generation = _Forks.count
        self._wake = threading.Condition(threading.Lock())
        self._batch = _Batch()
        self._closed = False
        self._crash: BaseException | None = None
        # the open file: the writer thread (sync: always) or appenders under _fd_lock (others)
        self._fd: int | None = None
        self._path: Path | None = None
        self._identity = (0, 0)
        self._size = 0
        self._seq = 0
        self._next_housekeeping = 0.0
        self._housekeeping_s = (
            min(_HOUSEKEEPING_S, retention.total_seconds()) if retention is not None else None
        )
        # counters, written by the writer thread only
        self._records = self._batches = self._bytes = self._errors = 0
        self._last_batch = 0
        self._last_commit = self._commit_total = 0.0
        self._files_opened = self._files_expired = 0
        self._syncs = self._sync_errors = 0
        self._last_sync = 0.0
        # the syncer thread (sync: interval) uses the open file only while holding this lock,
        # and the writer thread closes it only while holding it
        self._fd_lock = threading.RLock()
        self._direct = sync != "always"
        self._dirty = False
        # sync: interval: files let go of (descriptor, written since its last sync) and whether
        # a new file's folder entry is unsynced; the syncer thread syncs and closes them
        self._retired: list[tuple[int, bool]] = []
        self._folder_unsynced = False
        self._syncer_stop = threading.Event()
        self._syncer_wake = threading.Event()
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
        loop = asyncio.get_running_loop()
        while True:
            future: asyncio.Future[None] = loop.create_future()
            with self._wake:
                self._check_usable()
                batch = self._batch
                queued = self._enqueue(batch, line)
                batch.waiters.setdefault(loop, []).append(future)
            if queued:
                await future
                return
            # full: wait for the batch ahead to commit, then try again
            with contextlib.suppress(ServingError):
                await future

    def append_sync(self, record: Mapping[str, Any]) -> None:
        """:meth:`append` for threads: blocks until ``record`` is durable.

        Do not call it on an event loop's thread; it would stall every request meanwhile.
        """
        line = self._line(record)
        if self._direct:
            self._append_direct(line)
            return
        while True:
            with self._wake:
                self._check_usable()
                batch = self._batch
                queued = self._enqueue(batch, line)
                if batch.event is None:
                    batch.event = threading.Event()
                event = batch.event
            event.wait()
            if queued:
                if batch.error is not None:
                    raise self._failure(batch.error)
                return

    def _append_direct(self, line: bytes) -> None:
        """``sync: interval | never``: write ``line`` to the file now, in the caller's thread."""
        with self._fd_lock:
            self._check_usable()
            began = time.perf_counter()
            try:
                self._write(self._current_file(), line)
            except OSError as error:
                self._errors += 1
                raise self._failure(error) from None
            elapsed = time.perf_counter() - began
            self._records += 1
            self._batches += 1
            self._bytes += len(line)
            self._last_batch = 1
            self._last_commit = elapsed
            self._commit_total += elapsed
            if self._size >= self.rotate_bytes:
                self._rotate()

    def _enqueue(self, batch: _Batch, line: bytes) -> bool:
        """Add ``line`` to the open batch unless it is full (the lock is held)."""
        if len(batch.lines) >= self.max_pending:
            return False
        batch.lines.append(line)
        if len(batch.lines) == 1:
            self._wake.notify()
        return True

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

    def _check_usable(self) -> None:
        if self._closed:
            raise ServingError(f"the prediction log in {self.folder} is closed")
        if self._crash is not None:
            raise ServingError(
                f"the prediction log's writer stopped: {self._crash!r}",
                fix="restart the service; report the error if it comes back",
            )
        if _Forks.count != self._generation:
            raise ServingError(
                "this prediction log was opened in a parent process",
                fix="open the log in each worker process, after it starts",
            )

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        taken: _Batch | None = None  # taken from the queue, waiters not woken yet
        try:
            while True:
                with self._wake:
                    if not self._batch.lines and not self._closed:
                        self._wake.wait(self._housekeeping_s)
                    closing = self._closed
                    if self._batch.lines:
                        taken, self._batch = self._batch, _Batch()
                if taken is not None:
                    self._commit(taken)
                    self._settle(taken)
                    taken = None
                    if self._fd is not None and self._size >= self.rotate_bytes:
                        self._rotate()
                elif closing:
                    break
                if self.retention and time.monotonic() >= self._next_housekeeping:
                    self._delete_expired()
        except BaseException as error:  # a bug: fail every waiter rather than hang them
            with self._wake:
                self._crash = error
                pending, self._batch = self._batch, _Batch()
            for failed in (taken, pending):
                if failed is not None:
                    failed.error = error
                    self._settle(failed)
            raise
        finally:
            self._close_file()

    def _commit(self, batch: _Batch) -> None:
        began = time.perf_counter()
        data = b"".join(batch.lines)
        try:
            fd = self._current_file()
            self._write(fd, data)
        except OSError as error:
            batch.error = error
            self._errors += 1
            return
        elapsed = time.perf_counter() - began
        self._records += len(batch.lines)
        self._batches += 1
        self._bytes += len(data)
        self._last_batch = len(batch.lines)
        self._last_commit = elapsed
        self._commit_total += elapsed

    def _write(self, fd: int, data: bytes) -> None:
        start = self._size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            if self.sync == "always":
                os.fdatasync(fd)
            else:
                self._dirty = True
        except OSError:
            # The batch is refused, so take back what reached the file (a torn line followed by
            # the next batch would corrupt a good record), and end the file: after a failed
            # fdatasync its state is unknown. What cannot be taken back stays at the end of a
            # file nobody appends to any more, where readers skip it.
            truncated = False
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
                truncated = True
            self._close_file(remove_if_empty=truncated and start == 0)
            raise
        self._size = start + len(data)

    def _sync_periodically(self) -> None:
        """The syncer thread of the direct modes. ``sync: interval``: fdatasync the open file
        every ``sync_interval`` when it was written since, and each file let go of (then close
        it) as soon as it is handed over. Either direct mode: delete expired files."""
        interval = self.sync == "interval"
        period = self.sync_interval if interval else (self._housekeeping_s or 60.0)
        next_sync = time.monotonic() + period
        while True:
            self._syncer_wake.wait(max(0.0, next_sync - time.monotonic()))
            self._syncer_wake.clear()
            stopping = self._syncer_stop.is_set()
            self._sync_retired()
            if interval and time.monotonic() >= next_sync:
                self._sync_now()
            if time.monotonic() >= next_sync:
                next_sync = time.monotonic() + period
            if self.retention and time.monotonic() >= self._next_housekeeping:
                with self._fd_lock:
                    self._delete_expired()
            if stopping:
                self._sync_retired()  # close() handed over the last file just before
                return

    def _sync_retired(self) -> None:
        """fdatasync and close the files handed over by a rotation; fsync a new file's folder."""
        with self._fd_lock:
            retired, self._retired = self._retired, []
            folder, self._folder_unsynced = self._folder_unsynced, False
        for fd, dirty in retired:
            try:
                if dirty:
                    self._timed_sync(fd)
            finally:
                os.close(fd)
        if folder:
            try:
                directory = os.open(self.folder, os.O_RDONLY)
            except OSError:
                self._sync_errors += 1
                return
            try:
                os.fsync(directory)
            except OSError:
                self._sync_errors += 1
            finally:
                os.close(directory)

    def _sync_now(self) -> None:
        # fdatasync a duplicate of the descriptor outside the lock: appenders keep writing
        # while the disk catches up, and a rotation may close the original meanwhile
        with self._fd_lock:
            if self._fd is None or not self._dirty:
                return
            self._dirty = False
            try:
                fd = os.dup(self._fd)
            except OSError:
                self._sync_errors += 1
                return
        try:
            self._timed_sync(fd)
        finally:
            os.close(fd)

    def _timed_sync(self, fd: int) -> None:
        began = time.perf_counter()
        try:
            os.fdatasync(fd)
        except OSError:
            # acknowledged records are in the OS's cache, so a running machine keeps them;
            # a power loss now may not: counted in stats()
            self._sync_errors += 1
            return
        self._last_sync = time.perf_counter() - began
        self._syncs += 1

    def _settle(self, batch: _Batch) -> None:
        """Wake everyone waiting for ``batch``: one call per event loop, not per record."""
        if batch.event is not None:
            batch.event.set()
        for loop, futures in batch.waiters.items():
            # the loop is closed when it fails: nobody waits there any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._resolve, futures, batch.error)

    def _resolve(self, futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
        for future in futures:
            if future.done():  # its caller was cancelled
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(self._failure(error))

    # ------------------------------------------------------------------ files

    def _current_file(self) -> int:
        """The open file's descriptor; a new file if the open one was deleted or replaced.

        Another worker's retention (or an operator) may delete a file this writer holds open;
        writes would then go to a file nobody can read, so it is checked before every batch
        (every record when appenders write directly: one ``stat``, a few microseconds).
        """
        if self._fd is not None and self._path is not None:
            try:
                stat = os.stat(self._path)
                same = (stat.st_dev, stat.st_ino) == self._identity
            except OSError:
                same = False
            if not same:
                self._close_file()
        if self._fd is None:
            self._open_file()
        assert self._fd is not None
        return self._fd

    def _open_file(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        start = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        while True:
            path = self.folder / f"predictions-{self.worker}-{start}-{self._seq:04d}.jsonl"
            self._seq += 1
            try:  # never append to an existing file: it may end with a torn line
                fd = os.open(path, flags, 0o644)
            except FileExistsError:
                continue
            break
        try:
            stat = os.fstat(fd)
            if self.sync == "always":  # the new file's name survives a power loss before use
                directory = os.open(self.folder, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._path, self._size = fd, path, 0
        self._identity = (stat.st_dev, stat.st_ino)
        self._files_opened += 1
        if self.sync == "interval":  # ... or, with interval, soon after, off the caller's thread
            with self._fd_lock:
                self._folder_unsynced = True
            self._syncer_wake.set()

    def _close_file(self, *, remove_if_empty: bool = False) -> None:
        """Let go of the open file. With ``sync: interval`` it is handed to the syncer thread,
        which syncs and closes it, so no caller (an event loop) waits for the disk; a file
        whose failed batch was taken back and left it empty is closed and removed here."""
        if self._fd is None:
            return
        with self._fd_lock:
            fd, dirty = self._fd, self._dirty
            self._fd = None
            self._dirty = False
            if self.sync == "interval" and not remove_if_empty:
                self._retired.append((fd, dirty))
                self._syncer_wake.set()
                return
            with contextlib.suppress(OSError):
                os.close(fd)
            if remove_if_empty and self._path is not None:
                with contextlib.suppress(OSError):
                    self._path.unlink()

    def _rotate(self) -> None:
        self._close_file()
        if self._direct:  # the syncer thread deletes expired files, off the caller's thread
            self._next_housekeeping = 0.0
            self._syncer_wake.set()
        else:
            self._delete_expired()
        # ready before the next batch; if this fails, the next batch retries and reports it
        with contextlib.suppress(OSError):
            self._open_file()

    def _delete_expired(self) -> None:
        """Delete every log file (any worker's) not written within ``retention``."""
        if self.retention is None:
            return
        self._next_housekeeping = time.monotonic() + (self._housekeeping_s or 0.0)
        cutoff = time.time() - self.retention.total_seconds()
        for path in log_files(self.folder):
            if path == self._path and self._fd is not None:
                continue
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    self._files_expired += 1

    def _failure(self, error: BaseException) -> ServingError:
        if not isinstance(error, OSError):
            return ServingError(
                f"the prediction log in {self.folder} failed: {error!r}",
                fix="restart the service; report the error if it comes back",
            )
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = f"free space on the disk holding {self.folder}, or set serving.log.path"
        elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = f"make {self.folder} writable by the service, or set serving.log.path"
        else:
            fix = f"make {self.folder} a writable folder, or set serving.log.path"
        return ServingError(
            f"the prediction log in {self.folder} cannot be written: {error.strerror or error}",
            fix=fix + "; the log recovers by itself once it can write",
        )

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


# ---------------------------------------------------------------------- reading


def log_files(folder: Path) -> list[Path]:
    """Every log file in ``folder``, all workers, in order of start time (``[]`` if none)."""
    found = []
    for path in Path(folder).glob(_GLOB):
        match = _FILE.fullmatch(path.name)
        if match and path.is_file():
            found.append((match["start"], match["worker"], int(match["seq"]), path))
    return [path for *_, path in sorted(found)]


def count_records(folder: Path) -> int:
    """How many complete records the files in ``folder`` hold (a torn line is not one)."""
    count = 0
    for path in log_files(folder):
        for line in path.read_bytes().splitlines():
            try:
                count += isinstance(orjson.loads(line), dict)
            except orjson.JSONDecodeError:
                continue
    return count


def read_predictions(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    view: str = "predictions",
    *,
    columns: Mapping[str, str] | None = None,
) -> None:
    """Create (or replace) the DuckDB view ``view`` over every log file in ``folder``.

    The view reads the files each time it is queried, so new records and files are included,
    and skips torn lines (and records whose every value is null). Without
    ``columns`` (``{"request_id": "VARCHAR", ...}``), columns and their types are detected
    from every record at each query, which reads the files twice; with it, once. Raises
    :class:`ServingError` if nothing was logged yet.
    """
    folder = Path(folder)
    if not log_files(folder):
        raise ServingError(
            f"no prediction has been logged in {folder}",
            fix="serve some predictions first, or check serving.log.path",
        )
    options = ["format = 'newline_delimited'", "ignore_errors = true"]
    if columns:
        pairs = ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in columns.items())
        options.append(f"columns = {{{pairs}}}")
    else:
        options += ["union_by_name = true", "sample_size = -1", "maximum_sample_files = -1"]
    source = f"read_json({quote_literal(str(folder / _GLOB))}, {', '.join(options)})"
    # Under ignore_errors a torn line is a row whose every column is NULL. The test matches the
    # row's JSON rather than naming columns, so the view stays valid as columns come and go.
    con.execute(
        f"CREATE OR REPLACE VIEW {quote_identifier(view)} AS SELECT * FROM {source} AS record "
        f"WHERE NOT regexp_full_match(to_json(record)::VARCHAR, {quote_literal(_ALL_NULL)})"
    )
