"""Request body limits: 413 above the configured size (2 MiB), 408 when it takes too long.

The middleware and the counter's front door (service.counter_routes) bound a
body with the same functions below. The time bound (``body_timeout_seconds``,
30 s from the end of the headers) closes the connection of a client that sends
its body a byte at a time (slowloris); the headers' own bound is the reverse
proxy's (deploy/nginx/settlement.conf: uvicorn has no setting for it).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import problem_response


class BodyTimeout(Exception):
    """The body did not arrive whole within the time bound."""


async def read_body(scope: Scope, receive: Receive, limit: int, timeout: float | None = None) -> bytes | int | None:
    """The whole body; its size if over ``limit`` (declared or streamed); None if the client went away.

    Raises BodyTimeout when it is not all there ``timeout`` seconds after the call.
    """
    if timeout is None:
        return await _read_body(scope, receive, limit)
    try:
        async with asyncio.timeout(timeout):
            return await _read_body(scope, receive, limit)
    except TimeoutError:
        raise BodyTimeout from None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                return declared
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return size
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    # built only when needed: a problem response per request was measurable under load
    await problem_response(
        413, "payload_too_large", f"the body is larger than {limit} bytes", instance=scope.get("path")
    )(scope, receive, send)


async def send_timeout(scope: Scope, receive: Receive, send: Send, timeout: float) -> None:
    """408 and the connection closed (``Connection: close``): the client was too slow with its body."""
    await problem_response(
        408,
        "request_timeout",
        f"the body did not arrive within {timeout:g} s",
        instance=scope.get("path"),
        headers={"Connection": "close"},
    )(scope, receive, send)


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the body already read once, then what the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class BodyLimitMiddleware:
    """Refuses a declared Content-Length above the limit at once, a streamed body once past it, a body
    still incomplete after ``timeout`` seconds then."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float | None = None) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, self.limit, self.timeout)
        except BodyTimeout:
            await send_timeout(scope, receive, send, self.timeout or 0)
            return
        if body is None:
            return
        if isinstance(body, int):
            await send_too_large(scope, receive, send, self.limit)
            return
        await self.app(scope, replay(body, receive), send)
