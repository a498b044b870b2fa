"""The candidate served for real: ``taxiway serve`` in a subprocess on a free loopback port,
ready when ``/v2/health/ready`` answers, stopped with its process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess  # nosec B404
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from taxiway.errors import TaxiwayError
from taxiway.serving.auth import client_key
from taxiway.serving.faults import ENV as FAULTS_ENV
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

__all__ = ["RunningService", "running_service", "stop_process", "stop_service"]


@dataclass
class RunningService:
    """A `taxiway serve` subprocess on loopback, serving ``version`` (None: production)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    headers: dict[str, str]
    version: int | None = None

    def output(self, last: int = 2000) -> str:
        """The end of what the service printed."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-last:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_service(
    project: Project,
    version: int | None,
    *,
    faults: str | None = None,
    port: int | None = None,
    ready_timeout_s: float = 120.0,
    keep: bool = False,
) -> Iterator[RunningService]:
    """Start ``taxiway serve`` for ``version`` (None: production); stop it after (unless
    ``keep``). Raises :class:`TaxiwayError` with the service's output when it does not get
    ready."""
    port = port or _free_port()
    folder = project.state_dir / "sprint"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"serve-{port}.log"
    command = [sys.executable, "-m", "taxiway", "serve", "-f", str(project.spec_path),
               "--state-dir", str(project.state_dir), "--port", str(port)]  # fmt: skip
    if version is not None:
        command += ["--model", str(version)]
    env = {k: v for k, v in os.environ.items() if k != FAULTS_ENV}
    if faults:
        env[FAULTS_ENV] = faults
    with log.open("wb") as out:
        process = subprocess.Popen(  # nosec B603
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    key = client_key((project.spec.serving or Serving()).auth)
    service = RunningService(
        process, f"http://127.0.0.1:{port}", log, {"X-API-Key": key} if key else {}, version
    )
    try:
        _wait_ready(service, ready_timeout_s)
        yield service
    finally:
        if not keep:
            stop_service(service)


def stop_service(service: RunningService) -> None:
    """SIGTERM the service's process group, then SIGKILL after 15 s."""
    stop_process(service.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a child started with ``start_new_session`` (its whole process group: it finishes
    what it has in hand), then SIGKILL after 15 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_ready(service: RunningService, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if service.process.poll() is not None:
            raise TaxiwayError(
                f"the service exited with code {service.process.returncode} before it was "
                f"ready: {service.output(600).strip()}",
                fix=f"run the same `taxiway serve` yourself; its output is in {service.log}",
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{service.url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            stop_service(service)
            raise TaxiwayError(
                f"the service was not ready after {timeout_s:.0f}s: {service.output(600).strip()}",
                fix=f"see {service.log}",
            )
        time.sleep(0.2)
