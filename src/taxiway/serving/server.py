"""Run the service: bind checks, the ASGI server, workers.

Each worker process builds its own :class:`Service` from the spec (the app factory reads the
spec path, state folder and pinned version from the environment ``taxiway serve`` sets), so
workers share nothing but the files: the registry, the online store and the log folder (one
log file per worker).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import tempfile
from pathlib import Path

from taxiway.errors import ServingError
from taxiway.serving.auth import load_keys
from taxiway.serving.service import Service, servable_version
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

__all__ = ["app_factory", "is_loopback", "serve"]

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
    """Check that the service may start here, then run it until interrupted."""
    import uvicorn

    serving = project.spec.serving or Serving()
    if not is_loopback(host) and not load_keys(serving.auth):
        raise ServingError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could "
            "call the model",
            fix="set serving.auth (keys_file or key_env) in the spec, or bind to 127.0.0.1",
        )
    # fail here, in the parent, with a clear message (not in every worker)
    servable_version(project, model)
    _require_free_port(host, port)
    print(
        f"serving {project.spec.name} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}; OpenAPI at /openapi.json)",
        file=sys.stderr,
        flush=True,
    )
    os.environ[_ENV_SPEC] = str(project.spec_path)
    os.environ[_ENV_STATE] = str(project.state_dir)
    if model is not None:
        os.environ[_ENV_MODEL] = str(model)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = Path(tempfile.mkdtemp(prefix="taxiway-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    uvicorn.run(
        "taxiway.serving.server:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


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
