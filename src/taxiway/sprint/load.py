"""The sprint's load client: keep-alive clients posting ``/v1/predict`` (or another JSON
route, such as a recommender's ``/v1/recommend``) for a set time.

The load test runs for the seconds it is given: ``concurrency`` clients each send a request,
read its whole answer, and send the next, until the time is up (a request in flight when it
ends is finished and counted). ``max_requests`` caps the count instead, for runs that need a
number of answers rather than a length of time (the fault drills); a capped run stops at the
cap or at the time, whichever comes first, and :attr:`LoadResult.stopped_by` says which.

Each request is timed by its client, from the first byte sent to the last byte of the answer
read: the whole request, as a user sees it. The service's own ``latency_ms`` (from the
handler's start to its answer) is kept beside it. The clients run on the same machine, so
their figure also holds the client's share of the CPU. A 503 saying the prediction log cannot
be written is counted apart (the service refuses to answer unlogged).

The client speaks raw HTTP/1.1 on asyncio streams: an HTTP client library spends more CPU per
request than the service itself, on the same cores.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["LoadResult", "LoadTarget", "StoppedBy", "load_test"]

StoppedBy = Literal["time", "request cap"]

_UNLOGGED = b"prediction log cannot be written"
"""What the service's 503 says when it refuses to answer unlogged (taxiway.serving.service)."""


class LoadTarget(Protocol):
    """Where the load goes: a service's base URL (``http://127.0.0.1:PORT``) and the headers
    every request carries (the API key)."""

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...


@dataclass
class LoadResult:
    """What a load run measured.

    ``client_ms`` holds every answered request as its client timed it (sent to read), and
    ``server_ms`` the service's own ``latency_ms`` of each 200; ``refused_unlogged`` counts
    the 503s the service gave because its prediction log could not be written.
    ``duration_s`` is how long the requests ran (first sent to last answer read),
    ``seconds_asked`` the length asked for, ``max_requests`` the cap (None: none);
    ``service_start_s`` and ``service_stop_s`` are how long the service it ran against took to
    get ready and to stop, when the run started one of its own (the fault drills do), so
    :attr:`total_s` is the whole run as the sprint spent it.
    """

    requests: int
    errors: int
    degraded: int
    duration_s: float
    server_ms: list[float]
    client_ms: list[float]
    statuses: dict[int, int]
    refused_unlogged: int = 0
    seconds_asked: float = 0.0
    max_requests: int | None = None
    service_start_s: float = 0.0
    service_stop_s: float = 0.0

    @property
    def total_s(self) -> float:
        """The whole run: its service's start, the requests, and its service's stop."""
        return self.service_start_s + self.duration_s + self.service_stop_s

    @property
    def answered(self) -> int:
        """Requests answered with a prediction (HTTP 200)."""
        return len(self.server_ms)

    @property
    def stopped_by(self) -> StoppedBy:
        """``request cap`` when the run reached ``max_requests``, else ``time``."""
        capped = self.max_requests is not None and self.requests >= self.max_requests
        return "request cap" if capped else "time"

    def summary(self, budget_ms: float) -> dict[str, Any]:
        """JSON-ready figures: requests, answered, errors, rps, p50/p99 as the clients saw them
        (``client_*``, the gate) and as the service timed itself (``p50_ms``, ``p99_ms``), the
        budget and ``within_budget`` (answered, no error, client p99 within the budget); and
        the run's own timing: ``duration_s`` (the requests), ``seconds_asked``,
        ``max_requests``, ``stopped_by``, ``service_start_s``, ``service_stop_s`` and
        ``total_s``.

        >>> r = LoadResult(10, 0, 0, 2.0, [1.0] * 10, [3.0] * 10, {200: 10}, seconds_asked=2.0)
        >>> s = r.summary(50.0)
        >>> s["rps"], s["duration_s"], s["stopped_by"], s["within_budget"]
        (5.0, 2.0, 'time', True)
        """
        client_p99 = _quantile(self.client_ms, 0.99)
        return {
            "requests": self.requests,
            "answered": self.answered,
            "errors": self.errors,
            "degraded": self.degraded,
            "refused_unlogged": self.refused_unlogged,
            "rps": round(self.requests / self.duration_s, 1) if self.duration_s else 0.0,
            "p50_ms": _quantile(self.server_ms, 0.5),
            "p99_ms": _quantile(self.server_ms, 0.99),
            "max_ms": max(self.server_ms, default=0.0),
            "client_p50_ms": _quantile(self.client_ms, 0.5),
            "client_p99_ms": client_p99,
            "client_max_ms": round(max(self.client_ms, default=0.0), 3),
            "budget_ms": budget_ms,
            "latency_gate": "client_p99_ms",
            "within_budget": bool(self.answered) and self.errors == 0 and client_p99 <= budget_ms,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "duration_s": round(self.duration_s, 3),
            "seconds_asked": self.seconds_asked,
            "max_requests": self.max_requests,
            "stopped_by": self.stopped_by,
            "service_start_s": round(self.service_start_s, 3),
            "service_stop_s": round(self.service_stop_s, 3),
            "total_s": round(self.total_s, 3),
        }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def load_test(
    service: LoadTarget,
    bodies: list[dict[str, Any]],
    *,
    concurrency: int = 8,
    duration_s: float = 5.0,
    max_requests: int | None = None,
    path: str = "/v1/predict",
) -> LoadResult:
    """``concurrency`` keep-alive clients posting ``bodies`` round robin to ``path`` on
    loopback for ``duration_s`` seconds, or until ``max_requests`` when one is given. Every
    answer of ``path`` must carry ``latency_ms`` and ``degraded`` (``/v1/predict``'s and
    ``/v1/recommend``'s do)."""
    if duration_s <= 0:
        raise ValueError(f"a load test runs for a positive time, not {duration_s} s")
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"a request cap is at least 1, not {max_requests}")
    return asyncio.run(_load(service, bodies or [{}], concurrency, duration_s, max_requests, path))


async def _load(
    service: LoadTarget,
    bodies: list[dict[str, Any]],
    concurrency: int,
    duration_s: float,
    max_requests: int | None,
    path: str,
) -> LoadResult:
    host, port = "127.0.0.1", int(service.url.rsplit(":", 1)[1])
    extra = "".join(f"{k}: {v}\r\n" for k, v in service.headers.items())
    requests = []
    for body in bodies:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
        )
        requests.append(head.encode() + payload)
    result = LoadResult(
        0, 0, 0, 0.0, [], [], {}, seconds_asked=duration_s, max_requests=max_requests
    )
    cap = max_requests if max_requests is not None else float("inf")
    began = time.perf_counter()
    stop = began + duration_s

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        i = index
        try:
            while time.perf_counter() < stop and result.requests < cap:
                request = requests[i % len(requests)]
                i += concurrency
                sent = time.perf_counter()
                try:
                    writer.write(request)
                    status, body, keep = await _response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.requests += 1
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.client_ms.append((time.perf_counter() - sent) * 1000)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status != 200:
                    result.errors += 1
                    result.refused_unlogged += status == 503 and _UNLOGGED in body
                else:
                    answer = json.loads(body)
                    result.server_ms.append(float(answer["latency_ms"]))
                    result.degraded += bool(answer["degraded"])
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    result.duration_s = time.perf_counter() - began
    return result


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, whether the connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append((await reader.readexactly(size + 2))[:-2])
            if size == 0:
                break
        body = b"".join(parts)
    else:
        raise ValueError("a response without a length")
    return status, body, headers.get(b"connection") != b"close"
