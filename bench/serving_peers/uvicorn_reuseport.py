"""uvicorn with N workers, each on its own SO_REUSEPORT listening socket (Linux).

With one listening socket shared by the workers (``uvicorn --workers N``, and
``uvicorn_nodelay.py``), whichever worker wakes first accepts every connection waiting, so a
client that opens its keep-alive connections at once can land them all on one worker (seen
here with asyncio and with uvloop) and the second worker idles. With SO_REUSEPORT each worker
has its own socket and the kernel spreads new connections over them by a hash of the
addresses. Each socket is bound with IPPROTO_TCP and TCP_NODELAY (uvicorn issue #3149).

    python uvicorn_reuseport.py MODULE:APP --host 127.0.0.1 --port 8000 --workers 2 \
        [--loop asyncio|uvloop] [--http h11|httptools]

The parent only starts the workers and stops them on SIGTERM/SIGINT; a worker that dies
takes the server down (a benchmark wants to know), where uvicorn's supervisor would restart it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import socket
import sys
from typing import Any

import uvicorn


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def worker(options: dict[str, Any]) -> None:
    sock = listening_socket(options["host"], options["port"])
    config = uvicorn.Config(**options, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--http", default="httptools")
    args = parser.parse_args(argv)
    options = {"app": args.app, "host": args.host, "port": args.port, "loop": args.loop,
               "http": args.http}  # fmt: skip
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=worker, args=(options,)) for _ in range(args.workers)]
    for process in workers:
        process.start()

    def stop(signum: int, _: object) -> None:
        for process in workers:
            process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while all(process.is_alive() for process in workers):
        workers[0].join(0.5)
    stop(signal.SIGTERM, None)
    for process in workers:
        process.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
