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
