"""The prediction log's two writers, over its files (:mod:`taxiway.serving.log_files`).

* :class:`GroupCommit` (``sync: always``): appenders queue their records and wait; one writer
  thread writes and ``fdatasync``-s each batch (everything that arrived while the last one was
  being written), then wakes the batch's waiters, one call per event loop.
* :class:`DirectWrites` (``sync: interval | never``): each appender writes its line to the OS
  itself; a syncer thread ``fdatasync``-s the file now and then and deletes expired files.

:class:`~taxiway.serving.log.PredictionLog` is both, and picks one by its ``sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Unpack

from taxiway.errors import ServingError
from taxiway.serving.log_files import FileOptions, LogFiles

__all__ = ["DirectWrites", "GroupCommit", "Writer"]


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


class Writer(LogFiles):
    """What both writers share: the queue's lock, the counters, and whether appending is allowed."""

    def __init__(self, folder: Path, *, max_pending: int, **files: Unpack[FileOptions]) -> None:
        super().__init__(folder, **files)
        self.max_pending = max_pending
        self._generation = _Forks.count
        self._wake = threading.Condition(threading.Lock())
        self._batch = _Batch()
        self._closed = False
        self._crash: BaseException | None = None
        # counters, written by the writer thread only
        self._records = self._batches = self._bytes = self._errors = 0
        self._last_batch = 0
        self._last_commit = self._commit_total = 0.0

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


class GroupCommit(Writer):
    """``sync: always``: records wait in a batch that one writer thread commits at a time."""

    async def _append_grouped(self, line: bytes) -> None:
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

    def _append_grouped_sync(self, line: bytes) -> None:
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

    def _enqueue(self, batch: _Batch, line: bytes) -> bool:
        """Add ``line`` to the open batch unless it is full (the lock is held)."""
        if len(batch.lines) >= self.max_pending:
            return False
        batch.lines.append(line)
        if len(batch.lines) == 1:
            self._wake.notify()
        return True

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


class DirectWrites(Writer):
    """``sync: interval | never``: appenders write to the file; a syncer thread syncs it."""

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
