"""The leader locks: the one process of many that may act (the service's automatic rollout
checks, `taxiway run`'s retrains), held where the registry lives.

- SQLite registry: an exclusive ``flock`` on a file beside the database
  (:class:`FileLeader`). Every process sharing a SQLite registry runs on the host holding the
  file, and the kernel releases the lock the instant its holder dies.
- PostgreSQL registry: a session advisory lock (``pg_try_advisory_lock``) on a connection of
  its own (:class:`PostgresLeader`). The server releases it when the connection ends: at once
  when the holder's process dies, within the TCP keepalive bound (about 25 s) when its host
  vanishes. The holder confirms the connection each time it asks and stands down when it broke.

:func:`registry_lock` names the lock of one purpose (``rollout``, ``retrain``) of one model.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     first, second = FileLeader(Path(tmp) / "x.lock"), FileLeader(Path(tmp) / "x.lock")
...     taken = first.hold(), second.hold()
...     first.release()
...     again = second.hold()
...     second.release()
...     taken, again
((True, False), True)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from pathlib import Path
from typing import IO, Any, Protocol

from taxiway.spec.models import PostgresRegistry
from taxiway.spec.project import Project

__all__ = ["FileLeader", "LeaderLock", "PostgresLeader", "registry_lock"]

logger = logging.getLogger("taxiway.rollout.leader")


class LeaderLock(Protocol):
    """The lock electing the one process that runs the automatic checks."""

    def hold(self) -> bool:
        """Whether this process holds the lock: it held it and still does, or takes it now."""
        ...

    def release(self) -> None:
        """Let another process take the lock."""
        ...


class FileLeader:
    """An exclusive ``flock`` on ``path``: for a SQLite registry (one host)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle: IO[bytes] | None = None

    def hold(self) -> bool:
        if self._handle is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("ab")
        except OSError as error:
            logger.warning("cannot open the leader lock %s: %s", self.path, error)
            return False
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()  # releases the flock


class PostgresLeader:
    """A session advisory lock on a connection of its own: for a PostgreSQL registry (every
    replica sharing the database)."""

    def __init__(self, url: str, key: str, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        # pg advisory locks take a signed 64-bit key
        self.key = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        self.key -= 1 << 63
        self.connect_timeout_s = connect_timeout_s
        self._conn: Any = None

    def hold(self) -> bool:
        import psycopg  # the postgres extra: only a PostgreSQL registry needs it

        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")
                return True
            except psycopg.Error as error:
                logger.warning("lost the leader lock's connection: %s", error)
                self.release()
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as error:
            logger.warning("cannot reach the registry for the leader lock: %s", error)
            return False
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error as error:
            logger.warning("cannot take the leader lock: %s", error)
            conn.close()
            return False
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()  # the session ends: the server releases its lock


def registry_lock(project: Project, purpose: str, key: str) -> LeaderLock:
    """The lock of ``purpose`` for ``project``'s model where its registry lives: the file
    ``<registry file>.<purpose>-<model>.lock`` beside a SQLite registry, or the advisory lock
    keyed ``key:<schema>:<model>`` in a PostgreSQL one.

    >>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
    >>> registry_lock(project, "retrain", "taxiway.run").path.name  # doctest: +ELLIPSIS
    'registry.sqlite.retrain-...lock'
    """
    registry = project.spec.registry
    name = project.spec.name
    if isinstance(registry, PostgresRegistry):
        return PostgresLeader(
            registry.url.reveal(),
            f"{key}:{registry.schema_name}:{name}",
            connect_timeout_s=registry.connect_timeout_s,
        )
    path = (
        Path(registry.path)
        if registry is not None and registry.path
        else project.state_dir / "registry.sqlite"
    )
    return FileLeader(path.with_name(f"{path.name}.{purpose}-{name}.lock"))
