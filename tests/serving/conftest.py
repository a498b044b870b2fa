"""A trained, promoted, materialized shop, and real `taxiway serve` processes on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import retail_shop

from taxiway.cli import main


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running `taxiway serve` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, **kwargs)  # type: ignore[arg-type]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def serving(
    spec: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[Server]:
    """Start `taxiway serve -f spec ARGS` on a free port; stop it (SIGTERM, then SIGKILL) after."""
    port = free_port()
    log = spec.parent / f"serve-{port}.log"
    command = [
        sys.executable,
        "-m",
        "taxiway",
        "serve",
        "-f",
        str(spec),
        "--port",
        str(port),
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"taxiway serve exited ({process.returncode}):\n{server.output()}"
                )
            try:
                if httpx.get(f"{server.url}/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"taxiway serve not ready in {ready_timeout}s:\n{server.output()}"
                )
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def promote(spec: Path, version: int) -> None:
    """Make ``version`` the production one in the registry, as `taxiway models promote` does
    once its gate passes (the gate, sign-offs and audits, is not what these tests serve)."""
    from taxiway.models.registry import open_registry
    from taxiway.spec.project import Project

    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, version, "production", by="tests")
    finally:
        registry.close()


def trained_shop(folder: Path) -> Path:
    """The retail example (400 customers) in ``folder``, trained, version 1 promoted, store
    materialized; returns its spec."""
    spec = retail_shop(folder, customers=400)
    assert main(["train", "-f", str(spec), "--json"]) == 0
    promote(spec, 1)
    assert main(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"]) == 0
    return spec


@pytest.fixture(scope="session")
def shop(served_shop: Path) -> Path:
    """The session's trained shop (tests/conftest.py's ``served_shop``)."""
    return served_shop


def variant(
    shop: Path, folder: Path, text: str | None = None, *, serving: str = "", append: str = ""
) -> Path:
    """A copy of the shop's spec in ``folder`` sharing its data and contracts (not its state).

    ``serving`` lines (indented by two spaces) go into the spec's `serving:` section.
    """
    for item in ("data", "contracts"):
        target = folder / item
        if not target.exists():
            target.symlink_to(shop.parent / item)
    body = text if text is not None else shop.read_text()
    if serving:
        assert "\nserving:\n" in body
        body = body.replace("\nserving:\n", "\nserving:\n" + serving, 1)
    spec = folder / "taxiway.yaml"
    spec.write_text(body + append)
    return spec
