"""A stand-in for `taxiway serve` whose answers the sprint's load client can judge: run as
``python fake_service.py PORT DELAY_MS MODE``.

Every ``POST /v1/predict`` waits ``DELAY_MS`` before answering, and reports a ``latency_ms``
of 1 ms, as a service would that times only its handler while requests queue in front of it.
``MODE`` ``refuse`` answers 503 as taxiway does when its prediction log cannot be written.
``GET /v2/health/ready`` answers 200 at once.
"""

from __future__ import annotations

import asyncio
import json
import sys


async def main(port: int, delay_s: float, mode: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                body: dict[str, object]
                if head.startswith(b"GET"):
                    status, body = "200 OK", {"ready": True}
                elif mode == "refuse":
                    status, body = (
                        "503 Service Unavailable",
                        {
                            "error": "the prediction log cannot be written (disk full); refusing "
                            "to answer unlogged"
                        },
                    )
                else:
                    await asyncio.sleep(delay_s)
                    status, body = "200 OK", {"latency_ms": 1.0, "degraded": False}
                payload = json.dumps(body).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) / 1000, sys.argv[3]))
