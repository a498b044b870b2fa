"""The workers' HTTP protocol: one send per response, and HTTP/1.1 otherwise unchanged.

A real uvicorn server (uvloop, httptools) on loopback, spoken to with raw sockets, so what
is checked is what goes over the wire: whole responses, keep-alive, pipelining, streaming,
``Connection: close``, ``100 Continue``, and the number of sends per response.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from taxiway.serving.protocol import HeldWrites, OneSendProtocol

SENDS: list[tuple[int, bytes]] = []  # (connection number, bytes) of every real transport write


class _CountingTransport:
    """The real transport, with each write recorded."""

    def __init__(self, transport: Any, number: int) -> None:
        self._transport = transport
        self._number = number

    def write(self, data: bytes) -> None:
        SENDS.append((self._number, bytes(data)))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Counted(OneSendProtocol):
    opened = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _Counted.opened += 1
        super().connection_made(_CountingTransport(transport, _Counted.opened))  # type: ignore[arg-type]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    payload = b'{"echo":"' + body + b'","path":"' + path.encode() + b'"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app, loop="uvloop", http=_Counted, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    yield port
    instance.should_exit = True
    thread.join(10)


def _request(path: str, body: bytes = b"", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _read_response(conn: socket.socket, buffer: bytearray) -> bytes:
    """One whole response (content-length or chunked) from ``conn``; the rest stays buffered."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed mid-response: {bytes(buffer)!r}"
        buffer += chunk
    head_end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:head_end]).lower()
    if b"content-length:" in head:
        length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(buffer) < head_end + length:
            buffer += conn.recv(65536)
        end = head_end + length
    else:
        while b"0\r\n\r\n" not in buffer[head_end:]:
            chunk = conn.recv(65536)
            assert chunk
            buffer += chunk
        end = buffer.index(b"0\r\n\r\n", head_end) + 5
    response = bytes(buffer[:end])
    del buffer[:end]
    return response


def _sends_of(number: int) -> list[bytes]:
    return [data for n, data in SENDS if n == number]


def test_a_response_leaves_in_one_send(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        buffer = bytearray()
        for i in range(3):
            conn.sendall(_request("/json", b"x%d" % i))
            response = _read_response(conn, buffer)
            assert response.startswith(b"HTTP/1.1 200 OK")
            assert response.endswith(b'{"echo":"x%d","path":"/json"}' % i)
        number = _Counted.opened
    sends = _sends_of(number)
    assert len(sends) == 3, sends  # uvicorn alone sends the head and the body apart: 6
    assert all(s.startswith(b"HTTP/1.1 200 OK") and s.endswith(b'"}') for s in sends)


def test_pipelined_requests_are_answered_in_order(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(b"".join(_request(f"/p{i}", b"b%d" % i) for i in range(4)))
        buffer = bytearray()
        responses = [_read_response(conn, buffer) for _ in range(4)]
    for i, response in enumerate(responses):
        assert response.endswith(b'{"echo":"b%d","path":"/p%d"}' % (i, i))


def test_a_streamed_body_arrives_whole_and_in_order(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(_request("/stream"))
        response = _read_response(conn, bytearray())
    body = response.split(b"\r\n\r\n", 1)[1]
    assert b"transfer-encoding: chunked" in response.lower()
    parts = body.split(b"\r\n")
    assert [p for p in parts if p and not all(c in b"0123456789abcdef" for c in p)] == [
        b"one,",
        b"two,",
        b"three",
    ]
    assert response.endswith(b"0\r\n\r\n")


def test_connection_close_sends_the_response_then_closes(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(_request("/bye", b"z", "Connection: close\r\n"))
        conn.settimeout(5)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert received.endswith(b'{"echo":"z","path":"/bye"}')


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.settimeout(5)
        conn.sendall(
            _request("/slow", b"", "Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", b"Content-Length: 4"
            )
        )
        interim = conn.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        conn.sendall(b"body")
        buffer = bytearray(interim.split(b"\r\n\r\n", 1)[1])
        response = _read_response(conn, buffer)
    assert response.endswith(b'{"echo":"body","path":"/slow"}')


class _Sink:
    """A stand-in asyncio transport: what it was sent, and whether it closed."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.sent.append(b"<eof>")

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        self.paused = True


def test_held_writes_leave_together_at_the_end_of_the_loop_turn() -> None:
    async def scenario() -> list[list[bytes]]:
        sink = _Sink()
        held = HeldWrites(sink, asyncio.get_running_loop())
        held.write(b"a")
        held.write(bytearray(b"b"))
        held.writelines([memoryview(b"c"), b""])
        seen = [list(sink.sent)]
        await asyncio.sleep(0)
        seen.append(list(sink.sent))
        return seen

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == [b"abc"]


def test_close_and_write_eof_send_what_is_held_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[_Sink, _Sink, _Sink, int]:
        loop = asyncio.get_running_loop()
        closing, eof, aborting = _Sink(), _Sink(), _Sink()
        for sink, action in ((closing, "close"), (eof, "write_eof"), (aborting, "abort")):
            held = HeldWrites(sink, loop)
            held.write(b"last")
            getattr(held, action)()
        sized = HeldWrites(_Sink(), loop)
        sized.write(b"12345")
        size = sized.get_write_buffer_size()
        sized.flush()
        await asyncio.sleep(0)
        return closing, eof, aborting, size

    closing, eof, aborting, size = asyncio.run(scenario())
    assert closing.sent == [b"last"]
    assert closing.closed
    assert eof.sent == [b"last", b"<eof>"]
    assert aborting.sent == []
    assert aborting.aborted
    assert size == 5 + 7


def test_other_transport_calls_go_through_and_a_closed_peer_gets_nothing() -> None:
    async def scenario() -> _Sink:
        sink = _Sink()
        held = HeldWrites(sink, asyncio.get_running_loop())
        held.pause_reading()
        held.write(b"late")
        sink.closed = True
        held.flush()
        return sink

    sink = asyncio.run(scenario())
    assert sink.paused
    assert sink.sent == []
