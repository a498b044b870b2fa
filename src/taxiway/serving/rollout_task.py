"""The service's automatic rollout loop (``rollout.auto: true``): one process across every
worker and replica sharing the registry runs the real :meth:`Controller.check
<taxiway.rollout.controller.Controller.check>` on the active rollout every ``check_every``.

**Who checks: a leader lock where the rollout state lives.** Every worker of a service whose
spec says ``rollout.auto: true`` starts a :class:`RolloutLoop`; the one holding the lock
keeps a child process running the checks.

- SQLite registry: an exclusive ``flock`` on ``<registry file>.rollout-<model>.lock`` beside
  the database (the in-service monitor's approach). Every process that shares a SQLite
  registry runs on the host holding the file, so they all see the lock, and the kernel
  releases it the instant its holder dies.
- PostgreSQL registry: a session advisory lock (``pg_try_advisory_lock``, keyed by the schema
  and the model) on a connection of its own. Replicas on other hosts share the database, not
  a file system: a file lock would elect one leader per host. The server releases the lock
  when the connection ends: at once when the holder's process dies (its kernel closes the
  socket), within the TCP keepalive bound (about 25 s) when its whole host vanishes. The
  holder confirms the connection at every poll and stands down when it broke.

Every worker tries the lock every ``poll_s`` (2 s), so a killed leader is replaced within
``poll_s`` (plus the keepalive bound for a vanished host).

**Where: a child process** (``python -m taxiway.serving.rollout_task``, at a lower CPU
priority), for the reason the monitor runs in one: a check parses what the logs gained, up to
seconds of work holding the GIL, which in a worker's thread would stall its event loop. The
child exits at once when its standard input closes (the worker stopped or died): the unit
state is saved atomically and a transition is one compare-and-set transaction, so a check cut
short anywhere is harmless, and no orphan check overlaps the next leader's.

**When: read from the store, not kept in a process.** A check is due when ``check_every`` (of
the rollout's frozen plan) has passed since the rollout's row last changed (a check that holds
changes it too) and since this process's last attempt. So a new leader does not check again a
period its predecessor checked, a failing check is retried once a period (not in a tight
loop), and no active rollout means one indexed SELECT every few seconds and nothing else.

A check's failure is logged with its fix and the loop goes on; nothing here ever reaches a
request. Its transitions are written to the rollout's hash-chained events as a check from
the CLI writes them, ``by`` :data:`AUTO_BY`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import subprocess  # nosec B404
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

from taxiway.errors import TaxiwayError
from taxiway.rollout.controller import Controller
from taxiway.rollout.leader import FileLeader, LeaderLock, PostgresLeader, registry_lock
from taxiway.spec.models import Rollout
from taxiway.spec.project import Project

__all__ = [
    "AUTO_BY",
    "AutoCheck",
    "FileLeader",
    "LeaderLock",
    "PostgresLeader",
    "RolloutLoop",
    "RolloutService",
    "child_command",
    "leader_lock",
    "main",
    "service_rollout_loop",
]

logger = logging.getLogger("taxiway.serving.rollout")

AUTO_BY = "taxiway serve (rollout.auto)"
"""Who the automatic loop's transitions name in the rollout's events."""

POLL_S = 2.0
"""Seconds between a worker's tries at the leader lock."""

IDLE_S = 5.0
"""Seconds between two looks for an active rollout when there is none (or the store fails)."""


# ------------------------------------------------------------------ when: the schedule


class AutoCheck:
    """Runs ``controller.check()`` when the active rollout is due (see the module's "When").

    :meth:`run_due` never raises: a failed check is logged with its fix.
    """

    def __init__(self, controller: Controller, *, idle_s: float = IDLE_S) -> None:
        self.controller = controller
        self.idle_s = idle_s
        self.attempted: datetime | None = None
        self.checks = 0
        self.failures = 0

    def run_due(self, now: datetime | None = None) -> float:
        """Check now if a check is due; the seconds until the next one may be."""
        moment = now or datetime.now(UTC)
        try:
            state = self.controller.store.active(self.controller.name)
        except TaxiwayError as error:
            self._failed(error, "read the rollout state")
            return self.idle_s
        if state is None:
            return self.idle_s
        every = Rollout.model_validate(state.plan).check_every
        due = state.updated_at + every
        if self.attempted is not None:
            due = max(due, self.attempted + every)
        if moment < due:
            return min((due - moment).total_seconds(), self.idle_s)
        self.attempted = moment
        try:
            result = self.controller.check(now=moment)
        except (TaxiwayError, OSError, ValueError, KeyError, TypeError) as error:
            self._failed(error, "check the rollout")
        except Exception as error:  # the loop must outlive any one check
            self.failures += 1
            logger.error("the automatic rollout check failed unexpectedly", exc_info=error)
        else:
            self.checks += 1
            level = logging.INFO if result.transition is None else logging.WARNING
            logger.log(
                level,
                "rollout %s of %s: %s (%s)",
                result.state.id,
                result.state.name,
                result.verdict.kind,
                "; ".join(result.verdict.reasons) or "no reasons given",
            )
        return every.total_seconds()

    def _failed(self, error: Exception, action: str) -> None:
        self.failures += 1
        if isinstance(error, TaxiwayError):
            fix = f" (fix: {error.fix})" if error.fix else ""
            message = f"{error.message}{fix}"
        else:
            message = f"{error!r} (fix: check that the prediction log's folders are readable)"
        logger.warning("the automatic rollout loop could not %s: %s", action, message)


# ------------------------------------------------------------------ who: the leader lock


def leader_lock(project: Project) -> LeaderLock:
    """The leader lock of ``project``'s model, where its registry lives (see the module)."""
    return registry_lock(project, "rollout", "taxiway.rollout.auto")


# ------------------------------------------------------------------ in each worker


class RolloutLoop:
    """In each worker: try ``lock`` every ``poll_s`` seconds; while holding it, keep one child
    process (``command``, see :func:`child_command`) running the checks, restarted after a
    pause when it dies. :meth:`stop` ends the child and releases the lock."""

    def __init__(self, command: list[str], lock: LeaderLock, *, poll_s: float = POLL_S) -> None:
        self.command = command
        self.lock = lock
        self.poll_s = poll_s
        self.child: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restart_at = 0.0

    def start(self) -> None:
        """Start the worker's thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="taxiway-rollout-auto", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and the child, and hand the leadership on."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._end_child(timeout_s)
        self.lock.release()

    @property
    def leading(self) -> bool:
        """Whether this worker runs the child now."""
        return self.child is not None and self.child.poll() is None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.lock.hold():
                    self._keep_child()
                else:
                    self._end_child(5.0)  # a lost lock: another process leads now
            except Exception as error:  # never into serving
                logger.error("the automatic rollout loop failed", exc_info=error)
            self._stop.wait(self.poll_s)

    def _keep_child(self) -> None:
        now = time.monotonic()
        child = self.child
        if child is not None:
            if child.poll() is None:
                return
            self.child = None
            if child.stdin is not None:
                child.stdin.close()
            logger.warning(
                "the automatic rollout process exited with code %s; restarting it in %.0f s",
                child.returncode,
                _RESTART_S,
            )
            self._restart_at = now + _RESTART_S
        if now < self._restart_at:
            return
        try:
            self.child = subprocess.Popen(  # nosec B603
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the service reaches it by its pipe
            )
        except OSError as error:
            logger.warning("cannot start the automatic rollout process: %s", error)
            self._restart_at = now + _RESTART_S

    def _end_child(self, timeout_s: float) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # the child's signal to exit
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


_RESTART_S = 10.0


def child_command(project: Project) -> list[str]:
    """The command of the automatic rollout process for ``project``.

    >>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
    >>> child_command(project)[1:]  # doctest: +ELLIPSIS
    ['-m', 'taxiway.serving.rollout_task', '--spec', '/.../taxiway.yaml', '--state-dir', '/tmp/state']
    """
    return [
        sys.executable,
        "-m",
        "taxiway.serving.rollout_task",
        "--spec",
        str(project.spec_path),
        "--state-dir",
        str(project.state_dir),
    ]


class RolloutService(Protocol):
    """What the automatic loop reads of a service: its project and whether it is pinned to a
    version (:class:`~taxiway.serving.service.Service` and
    :class:`~taxiway.serving.recommend_service.RecommendService` both are one)."""

    @property
    def project(self) -> Project: ...

    @property
    def pinned(self) -> int | None: ...


def service_rollout_loop(service: RolloutService, *, poll_s: float = POLL_S) -> RolloutLoop | None:
    """The automatic loop of ``service`` when its spec says ``rollout.auto: true`` (None
    otherwise, and for a pinned service, which takes no part in a rollout). A lock that
    cannot be set up is logged, never a reason not to serve."""
    project = service.project
    rollout = project.spec.rollout
    if rollout is None or not rollout.auto or service.pinned is not None:
        return None
    try:
        lock = leader_lock(project)
    except TaxiwayError as error:
        logger.warning(
            "rollout.auto is on but its leader lock cannot be set up: %s (fix: %s); "
            "run `taxiway rollout run` beside the service instead",
            error.message,
            error.fix,
        )
        return None
    return RolloutLoop(child_command(project), lock, poll_s=poll_s)


# ------------------------------------------------------------------ the child


def main(argv: list[str] | None = None) -> int:
    """The automatic rollout process: check the active rollout when due, until standard input
    closes."""
    parser = argparse.ArgumentParser(prog="python -m taxiway.serving.rollout_task")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="taxiway rollout.auto: %(message)s")
    with contextlib.suppress(OSError):
        os.nice(10)  # serving first when the cores are busy

    def watch_parent() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        os._exit(0)  # at once, even mid-check: see the module's "Where"

    threading.Thread(target=watch_parent, name="taxiway-rollout-parent", daemon=True).start()
    try:
        project = Project.load(args.spec, args.state_dir)
    except TaxiwayError as error:
        logger.error("cannot load the spec: %s (fix: %s)", error.message, error.fix)
        return 1
    by = f"{AUTO_BY} on {socket.gethostname()}"
    with Controller(project, by=by) as controller:
        auto = AutoCheck(controller)
        while True:
            wait = auto.run_due()
            time.sleep(max(0.05, min(wait, IDLE_S)))


if __name__ == "__main__":
    sys.exit(main())
