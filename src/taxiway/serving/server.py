"""Run the service: bind checks, the ASGI server (uvicorn, uvloop, httptools), workers.

Each worker process builds its own :class:`Service` from the spec (the app factory reads the
spec path, state folder and pinned version from the environment ``taxiway serve`` sets), so
workers share nothing but the files: the registry, the online store and the log folder (one
log file per worker).

With several workers, the parent process listens and accepts, and hands each new connection
to the next worker in turn over a Unix socket (``SCM_RIGHTS``), as Node's cluster module does;
each worker serves the connections it is given with uvicorn's own protocol. Both ways the
kernel offers split connections by chance instead: one socket shared by every worker
(uvicorn's own ``--workers``) lets whichever worker wakes first take every waiting connection,
and one ``SO_REUSEPORT`` socket per worker hashes eight connections 6/2 one time in four; the
busier worker then sets the tail latency (measured in bench/RESULTS.md). Every connection has
``TCP_NODELAY`` (uvicorn issue #3149: without it, small answers wait for delayed ACKs).

Besides accepting, the parent supervises: it starts the workers, restarts one that dies (after a
pause that grows while they keep dying young, giving up with a message when a new worker
cannot even start), and on SIGTERM or SIGINT asks every worker to finish its in-flight
requests and stop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import multiprocessing
import os
import selectors
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


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``TCP_NODELAY`` (its connections inherit it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    channel: socket.socket | None = None  # connections handed over by the parent


def _run_worker(options: _WorkerOptions) -> None:
    """One worker: uvicorn on its own socket, or on the connections the parent hands it."""
    import uvicorn

    config = _config()
    if options.channel is None:
        sock = listening_socket(options.host, options.port)
        uvicorn.Server(config).run(sockets=[sock])
        return
    _HandedServer(config, options.channel).run(sockets=[])


def _config() -> Any:
    import uvicorn

    return uvicorn.Config(
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


def _handed_server_class() -> Any:
    import asyncio

    import uvicorn

    class HandedServer(uvicorn.Server):
        """uvicorn serving the connections the supervisor accepted and handed over.

        The protocol factory is the one uvicorn's own ``startup`` builds for its listeners.
        """

        def __init__(self, config: Any, channel: socket.socket) -> None:
            super().__init__(config)
            self.channel = channel

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            config, loop = self.config, asyncio.get_running_loop()

            def protocol() -> asyncio.Protocol:
                return config.http_protocol_class(  # type: ignore[call-arg]
                    config=config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                    _loop=loop,
                )

            def receive() -> None:
                while True:
                    try:
                        message, fds, _, _ = socket.recv_fds(self.channel, 16, 16)
                    except BlockingIOError:
                        return
                    except OSError:
                        message, fds = b"", []
                    if not message and not fds:  # the supervisor is gone: stop
                        loop.remove_reader(self.channel.fileno())
                        self.should_exit = True
                        return
                    for fd in fds:
                        conn = socket.socket(fileno=fd)
                        conn.setblocking(False)
                        loop.create_task(loop.connect_accepted_socket(protocol, conn))

            self.channel.setblocking(False)
            loop.add_reader(self.channel.fileno(), receive)

    return HandedServer


def _HandedServer(config: Any, channel: socket.socket) -> Any:
    return _handed_server_class()(config, channel)


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
    channel: socket.socket | None = None  # the supervisor's end of the hand-over channel


@dataclass
class _Supervisor:
    host: str
    port: int
    workers: int
    slots: list[_Slot] = field(default_factory=list)
    stopping: bool = False
    next_slot: int = 0

    def run(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._context = context
        listener = listening_socket(self.host, self.port)
        listener.listen(2048)
        listener.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.slots = [_Slot(index) for index in range(self.workers)]
            for slot in self.slots:
                self._start(slot)
            while not self.stopping:
                if selector.select(timeout=0.2):
                    self._accept(listener)
                self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            selector.close()
            listener.close()  # no new connection while the workers finish theirs
            self._stop_all()
            for slot in self.slots:
                if slot.channel is not None:
                    slot.channel.close()

    def _accept(self, listener: socket.socket) -> None:
        """Hand every waiting connection to the next live worker, round robin.

        The kernel's ``SO_REUSEPORT`` hash would split eight connections 6/2 one time in four,
        and the busier worker would set the tail latency; round robin splits them 4/4.
        """
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # too many open files, a connection reset before accept...
                return
            with conn:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(len(self.slots)):
                    slot = self.slots[self.next_slot % len(self.slots)]
                    self.next_slot += 1
                    if slot.channel is None or slot.process is None or not slot.process.is_alive():
                        continue
                    try:
                        socket.send_fds(slot.channel, [b"c"], [conn.fileno()])
                    except OSError:
                        continue
                    break  # the worker has its own copy; the supervisor's closes here

    def _start(self, slot: _Slot) -> None:
        if slot.channel is not None:
            slot.channel.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # a worker that stops reading (hung) must not stall accepting for the others: a full
        # channel raises, and the connection goes to the next worker
        ours.setblocking(False)
        options = _WorkerOptions(self.host, self.port, theirs)
        process = self._context.Process(
            target=_run_worker, args=(options,), name=f"taxiway-worker-{slot.index}"
        )
        process.start()
        theirs.close()
        slot.channel = ours
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
    if not 0 < port < 65536:
        raise ServingError(
            f"{port} is not a TCP port", fix="choose a port from 1 to 65535 with --port"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            raise ServingError(
                f"cannot listen on {host}:{port}: the host does not resolve ({error.strerror})",
                fix="give --host an address of this machine, e.g. 127.0.0.1 or 0.0.0.0",
            ) from None
        except OSError as error:
            raise ServingError(
                f"cannot listen on {host}:{port}: {error.strerror}",
                fix=f"stop whatever listens on port {port}, or choose another with --port",
            ) from None
