"""A bounded closed-loop HTTP/1.1 load generator, timed with the monotonic clock.

bench/serving.py's second load generator (``--load-generator python``): where wrk is missing,
and to cross-check wrk's latencies. ``CONCURRENCY`` keep-alive connections (TCP_NODELAY) each
POST the bodies of BODIES_FILE (one a line, cycled) one after another for SECONDS, on
127.0.0.1 only; it prints one ``WRK_JSON {...}`` line with the same keys as post.lua.

    python pyload.py PORT PATH BODIES_FILE CONCURRENCY SECONDS

It costs more CPU than wrk (Python parses every response), which the load generator's cores
in bench/serving.py's table show.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

HOST = "127.0.0.1"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, whether the server keeps the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get(b"connection") != b"close"


async def _connection(
    port: int, requests: list[bytes], start: int, deadline: float, latencies: list[int],
    errors: dict[str, int],
) -> None:  # fmt: skip
    clock = time.perf_counter_ns
    i = start
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            errors["connect"] += 1
            await asyncio.sleep(0.01)
            continue
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        keep = True
        while keep and time.monotonic() < deadline:
            request = requests[i % len(requests)]
            i += 1
            began = clock()
            try:
                writer.write(request)
                status, keep = await asyncio.wait_for(_read_response(reader), timeout=5)
            except TimeoutError:
                errors["timeout"] += 1
                break
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors["read"] += 1
                break
            latencies.append(clock() - began)
            if status > 399:
                errors["status"] += 1
        writer.close()


async def run(port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    requests = [
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), HOST.encode(), port, len(body), body)
        for body in bodies
    ]
    latencies: list[int] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    began = time.monotonic()
    deadline = began + seconds
    await asyncio.gather(
        *(
            _connection(port, requests, n * 7, deadline, latencies, errors)
            for n in range(concurrency)
        )
    )
    duration = time.monotonic() - began
    latencies.sort()
    count = len(latencies)

    def pct(p: float) -> int:
        return latencies[min(count - 1, int(count * p / 100))] // 1000 if count else 0

    return {
        "requests": count,
        "duration_us": int(duration * 1e6),
        **errors,
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "p999_us": pct(99.9),
        "max_us": latencies[-1] // 1000 if count else 0,
        "mean_us": sum(latencies) / count / 1000 if count else 0.0,
    }


def main(argv: list[str]) -> int:
    port, path, bodies_file, concurrency, seconds = argv
    with open(bodies_file, "rb") as handle:
        bodies = [line.strip() for line in handle if line.strip()]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run(int(port), path, bodies, int(concurrency), float(seconds)))
    print("WRK_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
