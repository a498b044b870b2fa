"""The HTTP protocol the workers run: uvicorn's httptools protocol, one send per response.

uvicorn writes a response's status line and headers, then its body, as two transport writes,
and uvloop sends each at once: two TCP segments and two wake-ups of the client per answer.
On loopback a send costs more than everything taxiway does to answer (measured with strace
and py-spy under ``bench/serving.py``: about 40% of a worker's time was the two sends). Here
the transport is wrapped so the writes of one response are held and leave as ONE send when
the response completes. Writes outside a response's completion (a streamed body, a
``100 Continue``, an error before close) are sent at the end of the event-loop turn, and
``close``/``write_eof`` send what is held first, so ordering and delivery are unchanged.

>>> import asyncio
>>> class Sink:
...     def __init__(self): self.sent = []
...     def write(self, data): self.sent.append(bytes(data))
...     def is_closing(self): return False
>>> async def demo():
...     sink = Sink()
...     held = HeldWrites(sink, asyncio.get_running_loop())
...     held.write(b"HTTP/1.1 200 OK\\r\\n\\r\\n"); held.write(b"{}")
...     held.flush()
...     return sink.sent
>>> asyncio.run(demo())
[b'HTTP/1.1 200 OK\\r\\n\\r\\n{}']
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeldWrites", "OneSendProtocol"]


class HeldWrites:
    """A transport whose writes are held until :meth:`flush` or the end of the loop turn.

    Everything but ``write``/``writelines``/``close``/``write_eof``/``abort`` and the write
    buffer size goes to the wrapped transport unchanged (``pause_reading``,
    ``get_extra_info``, ``is_closing``, ``set_protocol`` ...).
    """

    __slots__ = ("_loop", "_pending", "_scheduled", "_transport")

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data``; it is sent by the next :meth:`flush` (at the latest this loop turn)."""
        if not data:
            return
        self._pending.append(data if isinstance(data, bytes) else bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_later)

    def writelines(self, chunks: Any) -> None:
        """Hold every chunk."""
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Send everything held, as one write."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if self._transport.is_closing():
            return  # the peer is gone: the real transport would drop it too
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Send what is held, then close."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Send what is held, then half-close."""
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        """Drop what is held and close at once."""
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        """Bytes held here plus the wrapped transport's buffer."""
        held = sum(len(chunk) for chunk in self._pending)
        return held + int(self._transport.get_write_buffer_size())

    def _flush_later(self) -> None:
        self._scheduled = False
        self.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneSendProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`HeldWrites` transport, flushed per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport before uvicorn sees it."""
        super().connection_made(HeldWrites(transport, self.loop))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        """Send the whole response at once, then let uvicorn go on (keep-alive, pipelining)."""
        transport = self.transport
        if isinstance(transport, HeldWrites):
            transport.flush()
        super().on_response_complete()
