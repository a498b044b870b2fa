"""The prediction log's files: naming, opening, rotation, identity, syncing and retention.

One writer's files are ``predictions-<worker>-<UTC start>-<seq>.jsonl`` in one folder. A file
is created, never reopened (an old one may end with a torn line); the open file is checked
before each write in case someone deleted or replaced it; a full file is let go of and another
opened; files not written within ``retention`` are deleted, whichever worker wrote them. When a
file reaches the disk is ``sync``'s choice (see :mod:`taxiway.serving.log`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import re
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypedDict, Unpack

from taxiway.errors import MonitoringError, ServingError
from taxiway.monitoring.columnar import compact, remove_sidecar

__all__ = ["LOG_GLOB", "Compactor", "FileOptions", "LogFiles", "Sync", "log_files"]

LOG_GLOB = "predictions-*.jsonl"
"""What the name of every log file matches."""

_FILE = re.compile(r"predictions-(?P<worker>.+)-(?P<start>\d{8}T\d{6})-(?P<seq>\d+)\.jsonl")
_HOUSEKEEPING_S = 3600.0
_COMPACTOR_IDLE_S = 10.0
logger = logging.getLogger("taxiway.serving")

Sync = Literal["always", "interval", "never"]


class FileOptions(TypedDict):
    """How a log's files are named, rotated, kept and synced (see :class:`LogFiles`)."""

    worker: str | None
    rotate_bytes: int
    retention: timedelta | None
    sync: Sync
    sync_interval: float


class LogFiles:
    """The files of one prediction log: the open one, those let go of, and the expired ones.

    The writers of :mod:`taxiway.serving.log_writer` build on it.
    :class:`~taxiway.serving.log.PredictionLog` checks the arguments before they get here.
    """

    def __init__(self, folder: Path, **options: Unpack[FileOptions]) -> None:
        retention = options["retention"]
        self.folder = Path(folder)
        self.worker = options["worker"] or f"{os.getpid()}-{secrets.token_hex(3)}"
        self.rotate_bytes = options["rotate_bytes"]
        self.retention = retention
        self.sync: Sync = options["sync"]
        self.sync_interval = options["sync_interval"]
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
        # counters, written by the writer thread (or the syncer thread) only
        self._files_opened = self._files_expired = 0
        self._syncs = self._sync_errors = 0
        self._last_sync = 0.0
        # the syncer thread (sync: interval) uses the open file only while holding this lock,
        # and the writer thread closes it only while holding it
        self._fd_lock = threading.RLock()
        self._direct = self.sync != "always"
        self._dirty = False
        # sync: interval: files let go of (descriptor, written since its last sync) and whether
        # a new file's folder entry is unsynced; the syncer thread syncs and closes them
        self._retired: list[tuple[int, bool]] = []
        self._folder_unsynced = False
        self._syncer_stop = threading.Event()
        self._syncer_wake = threading.Event()
        self._compactor = Compactor() if self.columns else None

    columns = True
    """Whether each file let go of by a rotation gets a columnar sidecar (written in the
    background, see :mod:`taxiway.monitoring.columnar`), so readers need not parse its JSON."""

    # ------------------------------------------------------------------ writing

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
        assert self._fd is not None  # nosec B101
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
        closed = self._path if self._fd is not None else None
        self._close_file()
        if closed is not None and self._compactor is not None:
            self._compactor.submit(closed)
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
                    remove_sidecar(path)
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


class Compactor:
    """Writes the sidecars of closed log files, one at a time, in a background thread of low
    priority: appends never wait for it, and a file it fails on is logged and left to the
    readers' JSON path. The thread starts with the first file and ends when idle."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._idle = threading.Condition(threading.Lock())
        self._pending = 0
        self._thread: threading.Thread | None = None
        self.written = self.failed = 0

    def submit(self, path: Path) -> None:
        """Compact ``path`` soon (it must not be written to any more)."""
        with self._idle:
            self._pending += 1
            self._queue.put(path)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taxiway-prediction-log-columns", daemon=True
                )
                self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every file submitted is compacted (or failed); False on ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: a thread's own priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while True:
            try:
                path = self._queue.get(timeout=_COMPACTOR_IDLE_S)
            except queue.Empty:
                with self._idle:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                compact(path)
                self.written += 1
            except (MonitoringError, OSError) as error:
                self.failed += 1
                logger.warning("no columnar sidecar for %s: %s", path.name, error)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()


def log_files(folder: Path) -> list[Path]:
    """Every log file in ``folder``, all workers, in order of start time (``[]`` if none)."""
    found = []
    for path in Path(folder).glob(LOG_GLOB):
        match = _FILE.fullmatch(path.name)
        if match and path.is_file():
            found.append((match["start"], match["worker"], int(match["seq"]), path))
    return [path for *_, path in sorted(found)]
