"""Servers under test: each started in its own process group, ready when its ready route
answers, its answers checked, and stopped, group and descendants, when done or on exit.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from serving_model import HOST
from serving_targets import Target

TOLERANCE = 1e-9  # every target runs LightGBM 4.7.0 in float64: answers must be exact

_RUNNING: dict[int, subprocess.Popen[bytes]] = {}  # process-group id -> leader


def server_processes(pgid: int) -> list[Any]:
    """The live processes of a server: its process group and every descendant of its leader
    (BentoML's workers start sessions of their own)."""
    import psutil

    found: dict[int, Any] = {}
    with contextlib.suppress(psutil.Error):
        leader = psutil.Process(pgid)
        for process in [leader, *leader.children(recursive=True)]:
            found[process.pid] = process
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid not in found and os.getpgid(process.pid) == pgid:
                found[process.pid] = process
    return list(found.values())


def _stop_group(pgid: int, grace: float = 15.0) -> None:
    """SIGTERM the whole group, wait for it to go, SIGKILL what is left (descendants that
    left the group included)."""
    import psutil

    leader = _RUNNING.pop(pgid, None)
    members = server_processes(pgid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not any(_alive(process) for process in members):
            break
        time.sleep(0.1)
    for process in members:  # psutil checks the pid was not reused before signalling
        with contextlib.suppress(psutil.Error):
            process.kill()
    if leader is not None:
        leader.wait(5)


def _alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def stop_all() -> None:
    for pgid in list(_RUNNING):
        _stop_group(pgid, grace=5.0)


def on_signal(signum: int, _: Any) -> None:
    stop_all()
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def running(target: Target, log: Path) -> Iterator[tuple[int, int]]:
    """Start the target's server; yield (port, process-group id) once it answers ready."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    target.cwd.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            target.argv(port),
            cwd=target.cwd,
            env={**os.environ, **target.env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped together, workers too
        )
    pgid = process.pid
    _RUNNING[pgid] = process
    try:
        deadline = time.monotonic() + target.start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode} while starting: {tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {target.start_timeout:.0f} s: {tail(log)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(port, "GET", target.ready_path)[0] == 200:
                    break
            time.sleep(0.25)
        yield port, pgid
    finally:
        _stop_group(pgid)
        for _ in range(50):  # the port is free again before the next server binds one
            if not port_open(port):
                break
            time.sleep(0.1)


def tail(log: Path, lines: int = 6) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return " | ".join(text[-lines:])[-800:]


def check_answers(target: Target, port: int, count: int = 16) -> float:
    """POST the first ``count`` bodies one by one; the largest error against the expected
    predictions (0 when none are known). Raises when an answer is not a prediction."""
    worst = 0.0
    for i, body in enumerate(target.bodies[:count]):
        status, raw = request(port, "POST", target.path, body)
        if status != 200:
            raise RuntimeError(f"HTTP {status} for {body[:80]!r}: {raw[:300]!r}")
        value = target.answer(json.loads(raw))
        if not math.isfinite(value):
            raise RuntimeError(f"not a finite prediction: {raw[:300]!r}")
        if target.expected is not None:
            worst = max(worst, abs(value - float(target.expected[i])))
    if worst > TOLERANCE:
        raise RuntimeError(f"answers differ from Booster.predict by up to {worst:.3g}")
    return worst


def server_threads(pgid: int) -> list[int]:
    """Threads of each server process (after the answer check: LightGBM's OpenMP pool, if
    any, exists by then)."""
    import psutil

    counts = []
    for process in server_processes(pgid):
        with contextlib.suppress(psutil.Error):
            counts.append(process.num_threads())
    return sorted(counts, reverse=True)
