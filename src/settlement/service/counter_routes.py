"""The counter's hot routes, answered at the application's front door.

``POST /v1/settlements``, ``POST /v1/settlements/preview`` and
``POST /v1/settlements/{settlement_id}/reversal`` are nearly all of the
counter's traffic. Their handlers (settlements.router ``settle_counter``,
``preview_counter``, ``reverse_counter``) take the raw body and the request and
do their own key check, so everything between the server and them —
Starlette's and FastAPI's middleware layers (server errors, telemetry, their
body limit), our latency and body-limit middlewares, routing, dependency
solving, anyio's thread-pool hop — only costs CPU: about a third of a worker's
CPU under load (py-spy, docs/PERFORMANCE.md §3 step 15). :class:`SettlementApp`
therefore sends those paths to :class:`CounterRoutes` before any of that, and
CounterRoutes does itself, once, what the layers did for them:

- the body bounds (413 on a declared or streamed body over ``max_body_bytes``,
  408 on one not whole after ``body_timeout_seconds``, as limits.BodyLimitMiddleware);
- the latency histogram with the FastAPI route's template and the status (as
  metrics.LatencyMiddleware; ``scope["route"]`` is set to that route);
- errors rendered by the application's own exception handlers
  (errors.install), so the answers are the same bytes as through FastAPI;
- the handler in a thread of its own executor: ``loop.run_in_executor`` costs a
  fraction of anyio's ``run_sync`` (capacity limiter, run variables, cancel
  scopes); the counter's threads are as many as ``worker_threads``. A route
  with ``on_loop`` (the preview: service/pgloop.py) is first offered to that
  coroutine on the event loop itself, and goes to a thread only if it declines.

A route may decline a request (:attr:`FrontRoute.args` returns None: a reversal
body that is not certainly a valid one); FastAPI then answers it, from the same
bytes, as it answers every other method and path. The OpenAPI description of
these routes is FastAPI's, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .limits import BodyTimeout, read_body, replay, send_timeout, send_too_large
from .metrics import REQUEST_LATENCY

ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class FrontRoute:
    """A POST route answered at the front door.

    ``args(body, path parameters, scope)``, on the event loop: the handler's
    arguments before ``(request, ctx)``, or None to let FastAPI answer.
    ``handler(*args, request, ctx)`` runs in a counter thread and returns the response.
    """

    template: str
    handler: Callable[..., Any]
    args: Callable[[bytes, dict[str, Any], Scope], tuple[Any, ...] | None]
    on_loop: Callable[..., Awaitable[Any]] | None = None
    """``on_loop(*args, request, ctx)``, awaited on the event loop first: the response, or None to
    run ``handler`` in a counter thread after all."""


class CounterRoutes:
    def __init__(
        self,
        fastapi_app: FastAPI,
        router: APIRouter,
        routes: list[FrontRoute],
        fallback: ASGI,
        *,
        body_limit: int,
        threads: int,
        body_timeout: float | None = None,
    ) -> None:
        self.fastapi_app = fastapi_app
        self.fallback = fallback
        self.body_limit = body_limit
        self.body_timeout = body_timeout
        api_routes = {
            route.path: route
            for route in router.routes
            if isinstance(route, APIRoute) and "POST" in (route.methods or ())
        }
        missing = sorted({r.template for r in routes} - set(api_routes))
        if missing:  # a renamed route would silently fall back to the slow way
            raise RuntimeError(f"no FastAPI route for {missing}")
        self.exact = {r.template: (r, api_routes[r.template]) for r in routes if "{" not in r.template}
        self.templated = [(r, api_routes[r.template]) for r in routes if "{" in r.template]
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="counter")
        self._timers: dict[tuple[str, int], Any] = {}  # the histogram's child per (route, status)

    def match(self, scope: Scope) -> tuple[FrontRoute, APIRoute, dict[str, Any]] | None:
        """The front route of a POST to one of these paths, and its path parameters (as FastAPI reads them)."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path = scope["path"]
        found = self.exact.get(path)
        if found is not None:
            return found[0], found[1], {}
        for front, api_route in self.templated:
            m = api_route.path_regex.match(path)
            if m is not None:
                convert = api_route.param_convertors
                return front, api_route, {k: convert[k].convert(v) for k, v in m.groupdict().items()}
        return None

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, found: tuple[FrontRoute, APIRoute, dict[str, Any]]
    ) -> None:
        start = time.perf_counter()
        front, api_route, params = found
        status = 500
        try:
            try:
                body = await read_body(scope, receive, self.body_limit, self.body_timeout)
            except BodyTimeout:
                status = 408
                await send_timeout(scope, receive, send, self.body_timeout or 0)
                return
            if body is None:  # the client went away
                return
            if isinstance(body, int):  # over the limit
                status = 413
                await send_too_large(scope, receive, send, self.body_limit)
                return
            args = front.args(body, params, scope)
            if args is None:  # FastAPI answers (and times) it, from the same body
                status = 0
                await self.fallback(scope, replay(body, receive), send)
                return
            scope["route"] = api_route
            scope["app"] = self.fastapi_app  # request.app and request.state, as under FastAPI
            scope["path_params"] = params
            request = Request(scope, receive)
            ctx = self.fastapi_app.state.ctx
            response: Any = None
            try:
                if front.on_loop is not None:
                    response = await front.on_loop(*args, request, ctx)
                if response is None:
                    response = await asyncio.get_running_loop().run_in_executor(
                        self.executor, partial(front.handler, *args, request, ctx)
                    )
            except Exception as exc:
                response = await self._render(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            if status:
                timer = self._timers.get((front.template, status))
                if timer is None:
                    timer = REQUEST_LATENCY.labels("POST", front.template, str(status))
                    self._timers[(front.template, status)] = timer
                timer.observe(time.perf_counter() - start)

    async def _render(self, request: Request, exc: Exception) -> Any:
        """The application's own handler for this exception (the nearest class in its MRO)."""
        handlers = self.fastapi_app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return await handler(request, exc)  # type: ignore[misc]  # errors.install: all async
        raise exc  # pragma: no cover - errors.install registers a handler for Exception


class SettlementApp(FastAPI):
    """FastAPI, with the counter's hot routes answered before its middleware stack."""

    counter: CounterRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counter = self.counter
        found = counter.match(scope) if counter is not None else None
        if found is None:
            await super().__call__(scope, receive, send)
            return
        assert counter is not None
        await counter(scope, receive, send, found)

    async def behind_front_door(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own answer (for a request the front door declined)."""
        await super().__call__(scope, receive, send)
