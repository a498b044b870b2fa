"""Run the service: bind checks, the ASGI server (uvicorn, uvloop, httptools), workers.

Each worker process builds its own :class:`Service` from the spec (the app factory reads the
spec path, state folder and pinned version from the environment ``taxiway serve`` sets), so
workers share nothing but the files: the registry, the online store and the log folder (one
log file per worker).

With several workers, each listens on its own socket bound with ``SO_REUSEPORT`` and the
kernel spreads new connections over them. One socket shared by every worker (uvicorn's own
``--workers``) lets whichever worker wakes first take every waiting connection, so a client
that opens its keep-alive connections at once lands them on one worker and the others idle
(measured in bench/RESULTS.md: two workers on a shared socket gave less than one). Where
``SO_REUSEPORT`` is missing the workers share one socket. Every listening socket has
``TCP_NODELAY`` (uvicorn issue #3149: without it, small answers wait for delayed ACKs).

The parent process only supervises: it starts the workers, restarts one that dies (after a
pause that grows while they keep dying young, giving up with a message when a new worker
cannot even start), and on SIGTERM or SIGINT asks every worker to finish its in-flight
requests and stop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taxiway.errors import ServingError
from taxiway.serving.auth import load_keys
from taxiway.serving.faults import ENV as FAULTS_ENV
from taxiway.serving.faults import parse_faults
from taxiway.serving.service import Service, servable_version
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

__all__ = ["app_factory", "is_loopback", "listening_socket", "serve"]

_ENV_SPEC = "TAXIWAY_SERVE_SPEC"
_ENV_STATE = "TAXIWAY_SERVE_STATE_DIR"
_ENV_MODEL = "TAXIWAY_SERVE_MODEL"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_factory() -> object:
    """The ASGI app of one worker (uvicorn's ``--factory`` target)."""
    from taxiway.serving.app import build_app

    spec = os.environ[_ENV_SPEC]
    state = os.environ.get(_ENV_STATE) or None
    model = os.environ.get(_ENV_MODEL)
    project = Project.load(spec, state)
    return build_app(Service(project, pinned=int(model) if model else None))


def serve(
    project: Project,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    model: int | None = None,
) -> None:
    """Check that the service may start here, then run it until SIGTERM or SIGINT."""
    serving = project.spec.serving or Serving()
    if not is_loopback(host) and not load_keys(serving.auth):
        raise ServingError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could "
            "call the model",
            fix="set serving.auth (keys_file or key_env) in the spec, or bind to 127.0.0.1",
        )
    if workers < 1:
        raise ServingError(f"--workers must be at least 1, not {workers}")
    # fail here, in the parent, with a clear message (not in every worker)
    servable_version(project, model)
    faults = parse_faults(os.environ.get(FAULTS_ENV))
    _require_free_port(host, port)
    os.environ[_ENV_SPEC] = str(project.spec_path)
    os.environ[_ENV_STATE] = str(project.state_dir)
    if model is not None:
        os.environ[_ENV_MODEL] = str(model)
    print(
        f"serving {project.spec.name} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}; OpenAPI at /openapi.json)"
        + "".join(f"; FAULT INJECTED: {target}={mode}" for target, mode in faults.items()),
        file=sys.stderr,
        flush=True,
    )
    if workers == 1:
        _run_worker(_WorkerOptions(host, port))
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = Path(tempfile.mkdtemp(prefix="taxiway-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    _Supervisor(host, port, workers).run()


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``TCP_NODELAY`` (and ``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class _WorkerOptions:
    host: str
    port: int
    shared: socket.socket | None = None  # without SO_REUSEPORT: the parent's one socket


def _run_worker(options: _WorkerOptions) -> None:
    """One worker: its socket, then uvicorn until told to stop (the process's target)."""
    import uvicorn

    if options.shared is not None:
        sock = options.shared
    else:
        sock = listening_socket(options.host, options.port, reuse_port=_HAS_REUSEPORT)
    config = uvicorn.Config(
        "taxiway.serving.server:app_factory",
        factory=True,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        # the service logs no client address, so X-Forwarded-* rewriting is work for nothing
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])


_HAS_REUSEPORT = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")
_YOUNG_S = 10.0  # a worker that dies younger than this counts towards the back-off
_MAX_BACKOFF_S = 30.0
_STOP_TIMEOUT_S = 20.0


@dataclass
class _Slot:
    """One worker position: its current process and how it has been dying."""

    index: int
    process: Any = None  # multiprocessing.process.BaseProcess
    started: float = 0.0
    young_deaths: int = 0
    restart_at: float | None = None
    ready_once: bool = False


@dataclass
class _Supervisor:
    host: str
    port: int
    workers: int
    slots: list[_Slot] = field(default_factory=list)
    stopping: bool = False
    shared: socket.socket | None = None

    def run(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._context = context
        if not _HAS_REUSEPORT:
            self.shared = listening_socket(self.host, self.port, reuse_port=False)
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.slots = [_Slot(index) for index in range(self.workers)]
            for slot in self.slots:
                self._start(slot)
            while not self.stopping:
                self._watch()
                time.sleep(0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()
            if self.shared is not None:
                self.shared.close()

    def _start(self, slot: _Slot) -> None:
        options = _WorkerOptions(self.host, self.port, self.shared)
        process = self._context.Process(
            target=_run_worker, args=(options,), name=f"taxiway-worker-{slot.index}"
        )
        process.start()
        slot.process, slot.started, slot.restart_at = process, time.monotonic(), None

    def _watch(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and process.is_alive():
                if now - slot.started >= _YOUNG_S:
                    slot.young_deaths, slot.ready_once = 0, True
                continue
            if process is not None:  # it just died
                code = process.exitcode
                _mark_dead(process.pid)
                slot.process = None
                lived = now - slot.started
                slot.young_deaths = slot.young_deaths + 1 if lived < _YOUNG_S else 0
                if slot.young_deaths >= 5 and not slot.ready_once:
                    print(
                        f"taxiway serve: worker {slot.index} keeps exiting at start "
                        f"(exit code {code}); stopping. Its output above says why.",
                        file=sys.stderr,
                        flush=True,
                    )
                    self.stopping = True
                    return
                delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** max(0, slot.young_deaths - 1))
                print(
                    f"taxiway serve: worker {slot.index} (pid {process.pid}) exited with "
                    f"code {code} after {lived:.1f}s; restarting it in {delay:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
                slot.restart_at = now + delay
            if slot.restart_at is not None and now >= slot.restart_at:
                self._start(slot)

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def _stop_all(self) -> None:
        """SIGTERM every worker (uvicorn finishes in-flight requests), then wait, then kill."""
        alive = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in alive:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            _mark_dead(process.pid)


def _mark_dead(pid: int | None) -> None:
    """Tell prometheus_client's multi-process mode that ``pid`` is gone (its gauges)."""
    if pid is None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _require_free_port(host: str, port: int) -> None:
    """A clear error, before any worker starts, when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServingError(
                f"cannot listen on {host}:{port}: {error.strerror}",
                fix=f"stop whatever listens on port {port}, or choose another with --port",
            ) from None
