"""uvicorn's httptools protocol, sending each response in one write.

uvicorn writes a response's head and its body with two ``transport.write``
calls, and uvloop sends each at once, holding the GIL: two ``send()`` system
calls a response, and on loopback the client wakes up twice to read it.
:class:`CoalescingHttpToolsProtocol` hands uvicorn a transport that keeps what
is written during one turn of the event loop and sends it as one write at the
end of that turn (``loop.call_soon``), before any close. It subclasses a
uvicorn module that is not public API, so uvicorn is pinned exactly
(pyproject.toml) and tests/service/test_http.py runs the subclass against the
pinned version; why it stays: the interleaved A/B of docs/PERFORMANCE.md §5.8.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes of one event-loop turn go out as one write."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        pending = sum(len(b) for b in self._pending) if self._pending else 0
        return pending + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info, …
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
