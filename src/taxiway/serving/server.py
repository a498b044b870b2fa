"""Run the service: bind checks, the ASGI server (uvicorn, uvloop, httptools), workers.

Workers share nothing but the files: the registry, the online store and the log folder (one
log file per worker); each builds its own service (:mod:`taxiway.serving.worker`).

With several workers, the parent process listens and accepts, and hands each new connection
to the next worker in turn over a Unix socket (``SCM_RIGHTS``), as Node's cluster module does;
each worker serves the connections it is given with uvicorn's own protocol. Both ways the
kernel offers split connections by chance instead: one socket shared by every worker
(uvicorn's own ``--workers``) lets whichever worker wakes first take every waiting connection,
and one ``SO_REUSEPORT`` socket per worker hashes eight connections 6/2 one time in four; the
busier worker then sets the tail latency (measured in bench/RESULTS.md). Every connection has
``TCP_NODELAY`` (uvicorn issue #3149: without it, small answers wait for delayed ACKs).

Besides accepting, the parent supervises (:mod:`taxiway.serving.supervisor`): it starts the
workers, restarts one that dies, and on SIGTERM or SIGINT asks every worker to finish its
in-flight requests and stop. The metrics folder the workers share
(``PROMETHEUS_MULTIPROC_DIR``), when it makes one, is removed when it stops.

POSIX only: the supervisor hands connections with ``SCM_RIGHTS``, and the prediction log relies
on ``fork`` hooks and ``fdatasync``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
import tempfile

from taxiway.errors import ServingError
from taxiway.serving.auth import load_keys
from taxiway.serving.faults import ENV as FAULTS_ENV
from taxiway.serving.faults import parse_faults
from taxiway.serving.recommend_service import recommend_version
from taxiway.serving.service import servable_version
from taxiway.serving.supervisor import Supervisor
from taxiway.serving.worker import (
    ENV_MODEL,
    ENV_SPEC,
    ENV_STATE,
    WorkerOptions,
    app_factory,
    listening_socket,
    run_worker,
)
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

__all__ = ["app_factory", "is_loopback", "listening_socket", "serve"]


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
    if project.spec.recommend is not None:
        recommend_version(project, model)
    else:
        servable_version(project, model)
    faults = parse_faults(os.environ.get(FAULTS_ENV))
    _require_free_port(host, port)
    os.environ[ENV_SPEC] = str(project.spec_path)
    os.environ[ENV_STATE] = str(project.state_dir)
    if model is not None:
        os.environ[ENV_MODEL] = str(model)
    print(
        f"serving {project.spec.name} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}; OpenAPI at /openapi.json)"
        + "".join(f"; FAULT INJECTED: {target}={mode}" for target, mode in faults.items()),
        file=sys.stderr,
        flush=True,
    )
    if workers == 1:
        run_worker(WorkerOptions(host, port))
        return
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Supervisor(host, port, workers).run()
        return
    folder = tempfile.mkdtemp(prefix="taxiway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        Supervisor(host, port, workers).run()
    finally:  # the workers have stopped: nothing writes there any more
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(folder, ignore_errors=True)


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
