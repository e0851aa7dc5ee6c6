"""Request body limit: 413 above the configured size (2 MiB), before anything reads the body.

The middleware and the counter's front door (service.counter_routes) bound a
body with the same three functions below.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import problem_response


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | int | None:
    """The whole body; its size if over ``limit`` (declared or streamed); None if the client went away."""
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
    """Refuses a declared Content-Length above the limit at once, a streamed body once past it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, self.limit)
        if body is None:
            return
        if isinstance(body, int):
            await send_too_large(scope, receive, send, self.limit)
            return
        await self.app(scope, replay(body, receive), send)
