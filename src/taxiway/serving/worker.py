"""One worker process of ``taxiway serve``: uvicorn on its own socket, or on handed connections.

Each worker builds its own :class:`~taxiway.serving.service.Service` from the spec (the app
factory reads the spec path, state folder and pinned version from the environment
``taxiway serve`` sets); a spec with ``recommend:`` gets the recommendation service instead
(:class:`~taxiway.serving.recommend_service.RecommendService` behind
:func:`~taxiway.serving.recommend_app.build_recommend_app`). With several workers, the supervisor
(:mod:`taxiway.serving.supervisor`) accepts and hands each connection over a Unix socket
(``SCM_RIGHTS``); the worker serves it with the HTTP protocol class uvicorn's own ``startup``
builds for its listeners. That class's constructor is uvicorn's internal API: uvicorn is pinned
to the versions this was tested with, and tests/serving/test_worker.py fails when the
constructor no longer takes what :func:`handed_server_class` passes it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from taxiway.serving.service import Service
from taxiway.spec.project import Project

__all__ = [
    "ENV_MODEL",
    "ENV_SPEC",
    "ENV_STATE",
    "WorkerOptions",
    "app_factory",
    "handed_server_class",
    "listening_socket",
    "protocol_arguments",
    "run_worker",
    "uvicorn_config",
]

ENV_SPEC = "TAXIWAY_SERVE_SPEC"
ENV_STATE = "TAXIWAY_SERVE_STATE_DIR"
ENV_MODEL = "TAXIWAY_SERVE_MODEL"


def app_factory() -> object:
    """The ASGI app of one worker (uvicorn's ``--factory`` target): the prediction service's,
    or for a spec with ``recommend:`` the recommendation service's."""
    spec = os.environ[ENV_SPEC]
    state = os.environ.get(ENV_STATE) or None
    model = os.environ.get(ENV_MODEL)
    project = Project.load(spec, state)
    pinned = int(model) if model else None
    if project.spec.recommend is not None:
        from taxiway.serving.recommend_app import build_recommend_app
        from taxiway.serving.recommend_service import RecommendService

        return build_recommend_app(RecommendService(project, pinned))
    from taxiway.serving.app import build_app

    return build_app(Service(project, pinned=pinned))


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
class WorkerOptions:
    host: str
    port: int
    channel: socket.socket | None = None  # connections handed over by the parent


def run_worker(options: WorkerOptions) -> None:
    """One worker: uvicorn on its own socket, or on the connections the parent hands it."""
    import uvicorn

    config = uvicorn_config()
    if options.channel is None:
        sock = listening_socket(options.host, options.port)
        uvicorn.Server(config).run(sockets=[sock])
        return
    _HandedServer(config, options.channel).run(sockets=[])


def uvicorn_config() -> Any:
    import uvicorn

    return uvicorn.Config(
        "taxiway.serving.worker:app_factory",
        factory=True,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        # the service logs no client address, so X-Forwarded-* rewriting is work for nothing
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


def protocol_arguments(
    config: Any, server_state: Any, app_state: dict[str, Any], loop: Any
) -> dict[str, Any]:
    """The keyword arguments of uvicorn's HTTP protocol classes (``HttpToolsProtocol``, as of
    uvicorn 0.55): internal API, checked against the installed uvicorn by the tests."""
    return {"config": config, "server_state": server_state, "app_state": app_state, "_loop": loop}


def handed_server_class() -> Any:
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
                arguments = protocol_arguments(config, self.server_state, self.lifespan.state, loop)
                return config.http_protocol_class(**arguments)

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
    return handed_server_class()(config, channel)
