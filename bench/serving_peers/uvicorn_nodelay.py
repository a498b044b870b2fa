"""uvicorn with N workers on a listening socket that keeps TCP_NODELAY (uvicorn issue #3149).

``uvicorn --workers N`` binds the socket in the supervisor with ``socket.socket(family)``, so
its ``proto`` is 0; accepted connections inherit that, asyncio then skips ``TCP_NODELAY``,
and every keep-alive response written in two pieces (headers, body) waits for the client's
delayed ACK (~40 ms on Linux). This launcher does what ``uvicorn.run`` does for N workers but
binds the socket with ``IPPROTO_TCP`` (so asyncio sets ``TCP_NODELAY`` on each connection)
and also sets ``TCP_NODELAY`` on the listener (Linux copies it to accepted sockets, which
covers event loops that do not look at ``proto``).

    python uvicorn_nodelay.py MODULE:APP --host 127.0.0.1 --port 8000 --workers 2 \
        [--loop asyncio|uvloop] [--http h11|httptools]
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", default="asyncio")
    parser.add_argument("--http", default="h11")
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop=args.loop,
        http=args.http,
        log_level="warning",
        access_log=False,
    )
    sock = listening_socket(args.host, args.port)
    if args.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
