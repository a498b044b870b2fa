"""The in-service monitor: the service runs the monitor over its own prediction log every N
seconds and keeps the last report, for ``/dashboard`` and the drift, SLO and quality gauges of
``/metrics``.

With several workers, every worker starts a :class:`MonitorProcess`, and the one holding an
exclusive ``flock`` on ``<folder>/leader.lock`` (:func:`monitor_folder`) keeps a child process running the monitor
(once per interval for the whole service, not once per worker; ``python -m
taxiway.serving.monitor_task``, at a lower CPU priority). The child writes each run's outcome
to ``<folder>/latest.json``, which every worker's dashboard reads, and the leader sets its
process's gauges from it (in multi-process mode ``/metrics`` sums every worker's files, so
any worker's scrape shows them). When the leader dies, the kernel releases its lock and
closes the child's standard input (the child exits), and another worker takes the lock at
its next try.

The child also sends the report's alerts to the log and the spec's webhook, through the
same deduplicated state (``<state>/monitor/alerts.json``) as `taxiway monitor`, so a page is
sent once whichever of them saw it first.

Nothing of a run happens in a request, nor in the worker's process: an error is logged and
kept in ``latest.json`` (the page shows it, with the last good report), never raised into
serving. The monitor only reads the prediction log and the outcomes; it writes its own state
(windows and cursor, per version) under ``<folder>/<model>-v<version>``.
:class:`MonitorTask` (a thread) runs the same runs where no request waits: in that child, and
in `taxiway dashboard`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import logging
import os
import subprocess  # nosec B404
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import orjson

from taxiway.errors import MonitoringError, TaxiwayError
from taxiway.models.registry import ModelVersion, open_registry
from taxiway.serving.monitored import log_folders, monitor_inputs
from taxiway.serving.monitored import notify as send_alerts
from taxiway.spec.project import Project

if TYPE_CHECKING:
    pass

__all__ = [
    "ENV_INTERVAL",
    "INTERVAL_S",
    "MonitorProcess",
    "MonitorTask",
    "RunResult",
    "Runner",
    "child_command",
    "interval_from_env",
    "main",
    "monitor_folder",
    "monitored_version",
    "run_for_version",
]

logger = logging.getLogger("taxiway.serving.monitor")

INTERVAL_S = 60.0
ENV_INTERVAL = "TAXIWAY_MONITOR_INTERVAL_S"
"""Seconds between the in-service monitor's runs (default :data:`INTERVAL_S`; 0 turns it off)."""

FIRST_RUN_AFTER_S = 5.0
"""The first run waits this long (or the interval, when shorter) after the start."""

Status = Literal["pending", "ok", "no_reference", "error", "off"]


@dataclass(frozen=True)
class RunResult:
    """One run's outcome: a report (``MonitorReport.to_json()``), or why there is none."""

    status: Literal["ok", "no_reference"]
    version: int | None
    report: dict[str, Any] | None = None
    message: str | None = None


Runner = Callable[[], RunResult]


def interval_from_env(environ: Mapping[str, str] = os.environ) -> float:
    """The interval :data:`ENV_INTERVAL` sets, else :data:`INTERVAL_S`.

    >>> interval_from_env({}), interval_from_env({ENV_INTERVAL: "5"})
    (60.0, 5.0)
    >>> interval_from_env({ENV_INTERVAL: "soon"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    taxiway.errors.MonitoringError: TAXIWAY_MONITOR_INTERVAL_S must be a number of seconds...
    """
    raw = environ.get(ENV_INTERVAL)
    if raw is None or raw.strip() == "":
        return INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise MonitoringError(
            f"{ENV_INTERVAL} must be a number of seconds, not {raw!r}",
            fix="set it to e.g. 60 (0 turns the in-service monitor off), or unset it",
        )
    return value


def run_for_version(
    project: Project,
    version: ModelVersion,
    *,
    log_folder: Path,
    outcomes_folder: Path | None,
    state_folder: Path,
    notify: bool = False,
) -> RunResult:
    """One monitor run over the log for ``version`` (its stored reference), its windows kept
    under ``state_folder/<model>-v<version>``; ``no_reference`` when the version was trained
    before monitoring existed. ``notify``: send the alerts
    (:func:`~taxiway.serving.monitored.notify`)."""
    spec = project.spec
    reference = (version.profile or {}).get("monitor")
    if not reference:
        return RunResult(
            "no_reference",
            version.version,
            message=f"version {version.version} of {spec.name} has no monitor reference: it "
            "was trained before taxiway stored one, so its drift and quality cannot be "
            "judged. Retrain (`taxiway train`) and promote the new version to monitor it.",
        )
    # here, not at the top: a service that never runs the monitor does not load it
    from taxiway.monitoring.monitor import run_monitor

    inputs = monitor_inputs(
        project,
        version,
        log_folder=log_folder,
        state_folder=state_folder / f"{spec.name}-v{version.version}",
        # burn rates as of now, not the log's last minute: a service gone quiet stops paging
        now=datetime.now(UTC),
    )
    if outcomes_folder != inputs.outcomes_folder:
        inputs = dataclasses.replace(inputs, outcomes_folder=outcomes_folder)
    report = run_monitor(inputs)
    if notify:
        send_alerts(project, report)
    return RunResult("ok", version.version, report=dict(report.to_json()))


class MonitorTask:
    """Runs ``runner`` every ``interval_s`` seconds in a daemon thread, in the one process
    holding ``folder/leader.lock``, and keeps its outcome in ``folder/latest.json`` (not in a
    serving worker: see :class:`MonitorProcess`).

    ``on_report(report)`` is called (in that thread) after each successful run: the service
    sets its gauges there. ``interval_s`` 0 never runs (the page says the monitor is off).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     task = MonitorTask(lambda: RunResult("ok", 3, {"healthy": True}), Path(tmp))
    ...     print(orjson.loads(task.snapshot())["status"])
    ...     _ = task.run_once()
    ...     state = orjson.loads(task.snapshot())
    ...     task.stop()
    pending
    >>> state["status"], state["version"], state["report"]
    ('ok', 3, {'healthy': True})
    """

    def __init__(
        self,
        runner: Runner,
        folder: Path,
        *,
        interval_s: float = INTERVAL_S,
        on_report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.runner = runner
        self.folder = Path(folder)
        self.interval_s = interval_s
        self.on_report = on_report
        self.latest = self.folder / "latest.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock: IO[bytes] | None = None
        self._cache: tuple[tuple[int, int], bytes] | None = None
        self._last: dict[str, Any] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the thread (nothing when the interval is 0)."""
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="taxiway-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (waiting at most ``timeout_s`` for a run in progress), and hand
        the leadership on."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._stopped(timeout_s)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _stopped(self, timeout_s: float) -> None:
        """What else stops with the thread (a subclass's child process)."""

    def _loop(self) -> None:
        # not at once: the service's first seconds belong to warming up and its first requests
        self._stop.wait(min(self.interval_s, FIRST_RUN_AFTER_S))
        while not self._stop.is_set():
            if self.lead():
                self.run_once()
            self._stop.wait(self.interval_s)

    def lead(self) -> bool:
        """Whether this process runs the monitor: it holds the leader lock, or takes it now."""
        if self._lock is not None:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = (self.folder / "leader.lock").open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        return True

    # ------------------------------------------------------------------ one run

    def run_once(self) -> dict[str, Any]:
        """Run the monitor now and write its outcome; never raises (an error is logged and
        kept, with the last good report). Returns the state written."""
        began = time.perf_counter()
        previous = self._last or self._read_state()
        state: dict[str, Any]
        try:
            result = self.runner()
        except (TaxiwayError, OSError, ValueError, KeyError, TypeError) as error:
            message = error.message if isinstance(error, TaxiwayError) else repr(error)
            # once per new message: an idle service's empty log must not fill the log
            level = logging.DEBUG if message == previous.get("message") else logging.WARNING
            logger.log(level, "the monitor run failed: %s", message)
            logger.debug("the monitor run's error", exc_info=error)
            state = _state("error", previous.get("version"), message, previous.get("report"))
        except Exception as error:  # the monitor must never take the service down
            logger.error("the monitor run failed unexpectedly", exc_info=error)
            state = _state("error", previous.get("version"), repr(error), previous.get("report"))
        else:
            state = _state(result.status, result.version, result.message, result.report)
            if result.status == "ok":
                state["last_ok_at"] = state["ran_at"]
                if result.report is not None and self.on_report is not None:
                    try:
                        self.on_report(result.report)
                    except Exception as error:
                        logger.error("the monitor's gauges failed", exc_info=error)
        if state["status"] == "error":
            state["last_ok_at"] = previous.get("last_ok_at")
        state["took_s"] = round(time.perf_counter() - began, 3)
        state["interval_s"] = self.interval_s
        try:
            self._write(state)
        except OSError as error:
            logger.warning("cannot write the monitor's state to %s: %s", self.latest, error)
        self._last = state
        return state

    def _write(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = self.latest.with_name(f".latest.{os.getpid()}.{threading.get_ident()}.json")
        scratch.write_bytes(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))
        scratch.replace(self.latest)  # readers see the old file or the new one, never half

    def _read_state(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            state = orjson.loads(self.latest.read_bytes())
            if isinstance(state, dict):
                return state
        return {}

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> bytes:
        """The last run's state as JSON bytes (``status``, ``version``, ``message``,
        ``ran_at``, ``last_ok_at``, ``took_s``, ``interval_s``, ``report``): read from
        ``latest.json`` when it changed, so any worker answers with the leader's last run."""
        try:
            stat = self.latest.stat()
        except OSError:
            status: Status = "off" if self.interval_s <= 0 else "pending"
            message = (
                f"the in-service monitor is off ({ENV_INTERVAL}=0)"
                if status == "off"
                else "the monitor's first run has not finished yet"
            )
            state = _state(status, None, message, None)
            state["ran_at"] = None
            state["interval_s"] = self.interval_s
            return orjson.dumps(state)
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        try:
            data = self.latest.read_bytes()
        except OSError:
            return orjson.dumps(_state("error", None, "cannot read the monitor's state", None))
        self._cache = (key, data)
        return data


def _state(
    status: Status, version: Any, message: str | None, report: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "status": status,
        "version": version,
        "message": message,
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "last_ok_at": None,
        "report": report,
    }


class MonitorProcess(MonitorTask):
    """The in-service monitor: the worker holding the leader lock keeps one child process
    (``command``, e.g. :func:`child_command`) running the monitor every ``interval_s``
    seconds at a lower CPU priority, and sets its gauges from each new ``latest.json``.

    A run parses and profiles the log's new records for a second or more, much of it in C
    code that holds the GIL. Measured over a 60k-answer log on a loaded 2-core machine, a run
    in a thread of the worker held its event loop up to 43-250 ms (p99 10-19 ms), in a child
    process up to 12-28 ms (p99 3-5 ms, the machine's own noise): so it runs in its own
    process, which shares nothing with the worker but the files. The child exits when its standard input closes (the worker
    stopped, or died); one that dies is restarted after a pause that grows while it keeps
    dying.
    """

    def __init__(
        self,
        command: list[str],
        folder: Path,
        *,
        interval_s: float = INTERVAL_S,
        on_report: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(_in_the_child, folder, interval_s=interval_s, on_report=on_report)
        self.command = command
        self.poll_s = poll_s
        self.child: subprocess.Popen[bytes] | None = None
        self._deaths = 0
        self._started = 0.0
        self._restart_at = 0.0
        self._seen: tuple[int, int] | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.lead():
                self._keep_child()
                self._read_report()
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
            self._deaths = 0 if now - self._started > _CHILD_YOUNG_S else self._deaths + 1
            delay = min(_CHILD_MAX_BACKOFF_S, 2.0 * 2**self._deaths)
            logger.warning(
                "the monitor process exited with code %s; restarting it in %.0f s",
                child.returncode,
                delay,
            )
            self._restart_at = now + delay
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
            logger.warning("cannot start the monitor process: %s", error)
            self._restart_at = now + _CHILD_MAX_BACKOFF_S
            return
        self._started = now

    def _read_report(self) -> None:
        """The gauges of a new successful run."""
        try:
            stat = self.latest.stat()
        except OSError:
            return
        key = (stat.st_mtime_ns, stat.st_size)
        if key == self._seen:
            return
        self._seen = key
        state = self._read_state()
        report = state.get("report")
        if state.get("status") == "ok" and isinstance(report, dict) and self.on_report:
            try:
                self.on_report(report)
            except Exception as error:
                logger.error("the monitor's gauges failed", exc_info=error)

    def _stopped(self, timeout_s: float) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # the child's signal to finish its run and exit
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


_CHILD_YOUNG_S = 60.0
_CHILD_MAX_BACKOFF_S = 300.0


def _in_the_child() -> RunResult:
    raise MonitoringError("the monitor runs in its child process, not here")


def monitor_folder(project: Project) -> Path:
    """Where the service's monitor keeps its state: ``monitor/service`` beside the prediction
    log's folder (``<state>/monitor/service`` by default), so services writing one log run
    one monitor, and services sharing a state folder but not a log do not mix their reports.

    >>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
    >>> str(monitor_folder(project))
    '/tmp/state/monitor/service'
    """
    return log_folders(project)[0].parent / "monitor" / "service"


def child_command(project: Project, interval_s: float, pinned: int | None = None) -> list[str]:
    """The command of the service's monitor process (``python -m
    taxiway.serving.monitor_task``) for ``project``'s served version (``pinned``, else
    production).

    >>> project = Project.load("examples/retail/taxiway.yaml", "/tmp/state")
    >>> child_command(project, 60.0)[1:]  # doctest: +ELLIPSIS
    ['-m', 'taxiway.serving.monitor_task', '--spec', '/.../taxiway.yaml', '--state-dir', '/tmp/state', '--interval', '60.0']
    """
    command = [
        sys.executable,
        "-m",
        "taxiway.serving.monitor_task",
        "--spec",
        str(project.spec_path),
        "--state-dir",
        str(project.state_dir),
        "--interval",
        str(interval_s),
    ]
    return command + (["--model", str(pinned)] if pinned is not None else [])


def monitored_version(project: Project, version: int | None = None) -> ModelVersion:
    """``version`` of ``project``'s model, else its production version; a clear error when
    there is none."""
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        found = (
            registry.get(project.spec.name, version)
            if version is not None
            else registry.production(project.spec.name)
        )
    finally:
        registry.close()
    if found is None:
        raise MonitoringError(
            f"no version of {project.spec.name} is in production, so there is nothing to monitor"
            if version is None
            else f"{project.spec.name} has no version {version}",
            fix="name one with --model-version (see `taxiway models list`)",
        )
    return found


def main(argv: list[str] | None = None) -> int:
    """The service's monitor process: a run every ``--interval`` seconds over the log of the
    served version, until its standard input closes."""
    parser = argparse.ArgumentParser(prog="python -m taxiway.serving.monitor_task")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--interval", type=float, default=INTERVAL_S)
    parser.add_argument("--model", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="taxiway monitor: %(message)s")
    with contextlib.suppress(OSError):
        os.nice(10)  # serving first when the cores are busy
    project = Project.load(args.spec, args.state_dir)
    log_folder, outcomes_folder = log_folders(project)
    folder = monitor_folder(project)

    def runner() -> RunResult:
        return run_for_version(
            project,
            monitored_version(project, args.model),
            log_folder=log_folder,
            outcomes_folder=outcomes_folder,
            state_folder=folder,
            notify=True,
        )

    task = MonitorTask(runner, folder, interval_s=args.interval)
    stop = task._stop

    def watch_parent() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch_parent, name="taxiway-monitor-parent", daemon=True).start()
    stop.wait(min(args.interval, FIRST_RUN_AFTER_S))
    while not stop.is_set():
        task.run_once()
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
