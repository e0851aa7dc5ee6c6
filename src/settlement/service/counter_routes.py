"""The counter's hot routes: Starlette ``Route``s answered at the application's front door.

``POST /v1/settlements``, ``/v1/settlements/preview`` and
``/v1/settlements/{settlement_id}/reversal`` are nearly all of the counter's
traffic. They are not FastAPI routes: :class:`SettlementApp` matches them
(``Route.matches``) before FastAPI's middleware stack and router, whose layers
only cost CPU for them (docs/PERFORMANCE.md §3 step 15), and :class:`CounterRoutes`
does once what those layers do for every other route: the body bounds (413,
408: limits), the strict checks (service.strict, from the routes' declaration),
the latency histogram, errors rendered by the application's own handlers, and
the handler in a thread of the counter's executor (or awaited on the loop, for a
route with ``on_loop``: PostgreSQL's preview, service.pgloop).

The routes are declared for the OpenAPI document and the strict checks by an
APIRouter that is never mounted (settlements.router ``counter_api``);
:meth:`SettlementApp.openapi` documents them with the application's routes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from .limits import BodyTimeout, read_body, send_timeout, send_too_large
from .metrics import REQUEST_LATENCY
from .strict import front_door_problem


@dataclass(frozen=True)
class FrontRoute:
    """A POST route answered at the front door.

    ``args(body, path parameters, scope)``, on the event loop: the handler's arguments before
    ``(request, ctx)``; it raises for a body the route refuses.
    ``handler(*args, request, ctx)`` runs in a counter thread and returns the response; with
    ``on_loop``, it is a coroutine function awaited on the event loop instead.
    """

    template: str
    handler: Callable[..., Any]
    args: Callable[[bytes, dict[str, Any], Scope], tuple[Any, ...]]
    on_loop: bool = False


class _Endpoint:
    """The ASGI app of one front route (a Starlette ``Route``'s endpoint)."""

    def __init__(self, counter: CounterRoutes, front: FrontRoute, declared: APIRoute) -> None:
        self.counter, self.front, self.declared = counter, front, declared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.counter.answer(self.front, self.declared, scope, receive, send)


class CounterRoutes:
    """The front routes of one application, its counter executor and its bounds."""

    def __init__(
        self,
        fastapi_app: FastAPI,
        declarations: APIRouter,
        routes: Sequence[FrontRoute],
        *,
        body_limit: int,
        threads: int,
        body_timeout: float | None = None,
    ) -> None:
        self.fastapi_app = fastapi_app
        self.body_limit = body_limit
        self.body_timeout = body_timeout
        declared = {r.path: r for r in declarations.routes if isinstance(r, APIRoute) and "POST" in (r.methods or ())}
        missing = sorted({r.template for r in routes} - set(declared))
        if missing:  # a route the document would not describe
            raise RuntimeError(f"no declaration for {missing}")
        self.declared = [declared[r.template] for r in routes]
        self.routes = [
            Route(r.template, _Endpoint(self, r, declared[r.template]), methods=["POST"]) for r in routes
        ]
        self._alone: frozenset[str] | None = None
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="counter")
        self._timers: dict[tuple[str, int], Any] = {}  # the histogram's child per (route, status)

    def match(self, scope: Scope) -> Route | None:
        """The front route for this request (its path parameters put in ``scope``), if any."""
        if scope["type"] != "http":
            return None
        for route in self.routes:
            found, child = route.matches(scope)
            if found is Match.FULL or (found is Match.PARTIAL and route.path in self.alone()):
                scope.update(child)
                return route
        return None

    def alone(self) -> frozenset[str]:
        """The templates the document lists POST alone for: another method there is the counter's 405;
        on the others (``GET /v1/settlements``) it is FastAPI's route."""
        if self._alone is None:
            paths = self.fastapi_app.openapi()["paths"]
            self._alone = frozenset(r.path for r in self.routes if set(paths.get(r.path, ())) == {"post"})
        return self._alone

    async def answer(
        self, front: FrontRoute, declared: APIRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        start = time.perf_counter()
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
            params = scope["path_params"]
            scope["app"] = self.fastapi_app  # request.app and request.state, as under FastAPI
            request = Request(scope, receive)
            ctx = self.fastapi_app.state.ctx
            response: Any = None
            try:
                problem = front_door_problem(declared, scope, params, body)  # as strict.strict_request does
                if problem is not None:
                    raise problem
                args = front.args(body, params, scope)
                if front.on_loop:
                    response = await front.handler(*args, request, ctx)
                else:
                    response = await asyncio.get_running_loop().run_in_executor(
                        self.executor, partial(front.handler, *args, request, ctx)
                    )
            except Exception as exc:
                response = await self._render(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            timer = self._timers.get((front.template, status))
            if timer is None:
                timer = REQUEST_LATENCY.labels("POST", front.template, str(status))
                self._timers[(front.template, status)] = timer
            timer.observe(time.perf_counter() - start)

    async def refuse_method(self, scope: Scope, receive: Receive, send: Send) -> None:
        """405 for another method on a path only the front routes have (Allow: errors.allowed_methods)."""
        request = Request({**scope, "app": self.fastapi_app}, receive)
        response = await self._render(request, HTTPException(405))
        await response(scope, receive, send)

    async def _render(self, request: Request, exc: Exception) -> Any:
        """The application's own handler for this exception (the nearest class in its MRO)."""
        handlers = self.fastapi_app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return await handler(request, exc)  # type: ignore[misc]  # errors.install: all async
        raise exc  # pragma: no cover - errors.install registers a handler for Exception


class SettlementApp(FastAPI):
    """FastAPI, with the counter's routes answered before its middleware stack."""

    counter: CounterRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counter = self.counter
        route = counter.match(scope) if counter is not None else None
        if route is None:
            await super().__call__(scope, receive, send)
        elif scope["method"] != "POST":
            assert counter is not None
            await counter.refuse_method(scope, receive, send)
        else:
            await route.handle(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document of the application's routes and of the counter's declared ones."""
        if not self.openapi_schema:
            declared = self.counter.declared if self.counter is not None else []
            self.openapi_schema = get_openapi(
                title=self.title,
                version=self.version,
                openapi_version=self.openapi_version,
                summary=self.summary,
                description=self.description,
                routes=[*declared, *self.routes],
                tags=self.openapi_tags,
                servers=self.servers,
            )
        return self.openapi_schema
