"""The counter's two hot routes, answered at the application's front door.

``POST /v1/settlements`` and ``POST /v1/settlements/preview`` are most of the
traffic. Their handlers (settlements.router ``settle_counter`` /
``preview_counter``) take the raw body and the request and do their own key
check, so everything between the server and them — Starlette's and FastAPI's
middleware layers (server errors, telemetry, their body limit), our latency and
body-limit middlewares, routing, dependency solving, anyio's thread-pool hop —
only cost CPU: ~30 % of a worker's CPU under load (py-spy, docs/PERFORMANCE.md
§3 step 15). :class:`SettlementApp` therefore sends those two exact paths to
:class:`CounterRoutes` before any of that, and CounterRoutes does itself, once,
what the layers did for them:

- the body bound (413 on a declared or streamed body over ``max_body_bytes``,
  as limits.BodyLimitMiddleware);
- the latency histogram with the FastAPI route's template and the status (as
  metrics.LatencyMiddleware; ``scope["route"]`` is set to that route);
- errors rendered by the application's own exception handlers
  (errors.install), so the answers are the same bytes as through FastAPI;
- the handler in a thread of its own executor: ``loop.run_in_executor`` costs a
  fraction of anyio's ``run_sync`` (capacity limiter, run variables, cancel
  scopes), and the counter's threads are sized like the rest
  (``worker_threads``).

Everything else — and the OpenAPI description of these routes, and any other
method on these paths — is FastAPI's, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from .errors import problem_response
from .metrics import REQUEST_LATENCY


class CounterRoutes:
    def __init__(
        self,
        fastapi_app: FastAPI,
        router: APIRouter,
        handlers: dict[str, Callable[..., Any]],
        *,
        body_limit: int,
        threads: int,
    ) -> None:
        self.fastapi_app = fastapi_app
        self.handlers = handlers
        self.body_limit = body_limit
        self.routes = {
            route.path: route
            for route in router.routes
            if isinstance(route, APIRoute) and route.path in handlers and "POST" in (route.methods or ())
        }
        missing = set(handlers) - set(self.routes)
        if missing:  # a renamed route would silently fall back to the slow way
            raise RuntimeError(f"no FastAPI route for {sorted(missing)}")
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="counter")
        self._timers: dict[tuple[str, int], Any] = {}  # the histogram's child per (route, status)

    def handles(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        path = scope["path"]
        route = self.routes[path]
        scope["route"] = route
        scope["app"] = self.fastapi_app  # request.app and request.state, as under FastAPI
        status = 500
        try:
            body = await self._body(scope, receive)
            if body is None:  # the client went away
                return
            if isinstance(body, int):  # over the limit
                status = 413
                await self._too_large(scope, receive, send)
                return
            request = Request(scope, receive)
            try:
                response = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self.handlers[path], body, request, self.fastapi_app.state.ctx
                )
            except Exception as exc:
                response = await self._render(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            timer = self._timers.get((path, status))
            if timer is None:
                timer = self._timers[(path, status)] = REQUEST_LATENCY.labels("POST", route.path, str(status))
            timer.observe(time.perf_counter() - start)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | int | None:
        """The whole body; its size if over the limit (declared or streamed); None on a disconnect."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.body_limit:
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
            if size > self.body_limit:
                return size
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(
            413, "payload_too_large", f"the body is larger than {self.body_limit} bytes", instance=scope["path"]
        )(scope, receive, send)

    async def _render(self, request: Request, exc: Exception) -> Any:
        """The application's own handler for this exception (the nearest class in its MRO)."""
        handlers = self.fastapi_app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return await handler(request, exc)  # type: ignore[misc]  # errors.install: all async
        raise exc  # pragma: no cover - errors.install registers a handler for Exception


class SettlementApp(FastAPI):
    """FastAPI, with the counter's two hot routes answered before its middleware stack."""

    counter: CounterRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counter = self.counter
        if counter is not None and counter.handles(scope):
            await counter(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
