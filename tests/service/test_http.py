"""service/http.py: a response's head and body leave in one write, and nothing is lost or reordered."""

from __future__ import annotations

import asyncio
from typing import Any

from settlement.service.http import CoalescingTransport


class Recorder:
    """The transport under the coalescing one: records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.paused = 0

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused += 1


def test_writes_of_one_loop_turn_leave_as_one_in_order() -> None:
    async def run() -> Recorder:
        raw = Recorder()
        t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        assert raw.writes == [] and t.get_write_buffer_size() == 40
        await asyncio.sleep(0)  # the end of this turn
        assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        t.write(b"next")  # the next response: a write of its own
        await asyncio.sleep(0)
        t.pause_reading()  # everything else is the real transport's
        return raw

    raw = asyncio.run(run())
    assert raw.writes[1:] == [b"next"] and raw.paused == 1


def test_close_sends_what_is_pending_first() -> None:
    async def run() -> Any:
        raw = Recorder()
        t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"head")
        t.write(b"body")
        t.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left and does not write after close
        return raw

    raw = asyncio.run(run())
    assert raw.writes == [b"headbody"] and raw.closed


def test_uvicorns_protocol_sends_head_and_body_in_one_write() -> None:
    """The subclass against the pinned uvicorn (pyproject's exact pin): a request through uvicorn's own
    httptools protocol, on a recording transport, leaves as one write with the head and body in order."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from settlement.service.http import CoalescingHttpToolsProtocol

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    class Socket(Recorder):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

        def resume_reading(self) -> None:
            pass

    async def run() -> Socket:
        config = Config(app, http=CoalescingHttpToolsProtocol, lifespan="off", log_level="warning")
        config.load()
        protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        raw = Socket()
        protocol.connection_made(raw)  # type: ignore[arg-type]
        protocol.data_received(b"POST /v1/settlements/preview HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        for _ in range(50):
            await asyncio.sleep(0)
            if raw.writes:
                break
        protocol.connection_lost(None)
        return raw

    raw = asyncio.run(run())
    assert len(raw.writes) == 1, raw.writes
    head, _, body = raw.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 2" in head.lower() and body == b"{}"
