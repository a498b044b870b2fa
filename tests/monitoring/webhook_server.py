"""A real local HTTP server that records JSON POSTs and answers scripted statuses (tests only)."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "s3cret-token-do-not-log"


class HookServer:
    """Answers each POST with the next scripted status (200 once the script is spent)."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self.statuses: deque[int] = deque(statuses)
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    hook.received.append(json.loads(body))
                    hook.headers.append(dict(self.headers))
                    status = hook.statuses.popleft() if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        """The hook's URL, with a secret in its path and query as real webhooks have."""
        return f"http://127.0.0.1:{self.server.server_port}/hooks/{TOKEN}?token={TOKEN}"

    @property
    def shown(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/..."

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def closed_port_url() -> str:
    """A URL on a local port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/{TOKEN}?token={TOKEN}"
