"""The supervisor of several workers: it accepts, hands connections round robin, restarts.

The parent process listens and accepts, and hands each new connection to the next worker in
turn over a Unix socket (``SCM_RIGHTS``), as Node's cluster module does. It starts the workers,
restarts one that dies (after a pause that grows while they keep dying young, giving up with a
message when a new worker cannot even start), and on SIGTERM or SIGINT asks every worker to
finish its in-flight requests and stop.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from taxiway.serving.worker import WorkerOptions, listening_socket, run_worker

__all__ = ["Supervisor"]

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
class Supervisor:
    """Runs ``workers`` workers behind one listening socket on ``host:port`` until a signal."""

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
        options = WorkerOptions(self.host, self.port, theirs)
        process = self._context.Process(
            target=run_worker, args=(options,), name=f"taxiway-worker-{slot.index}"
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
