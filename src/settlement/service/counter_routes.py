"""The counter's two hot routes dispatched ahead of FastAPI's router.

``POST /v1/settlements`` and ``POST /v1/settlements/preview`` are most of the
traffic. Their handlers (settlements.router ``_settle`` / ``_preview``) take the
raw body and the request and do their own key check, so FastAPI's routing,
dependency solving and exception middleware add nothing to them but ~0.1–0.3 ms
of CPU a request (docs/PERFORMANCE.md). This ASGI middleware sends those two
exact paths straight to the same handlers, in the same single thread-pool hop,
and renders any error through the application's own exception handlers
(errors.install), so the answers are the same bytes. Everything else — and the
OpenAPI description of these routes — is FastAPI's, as before.

It sits inside BodyLimitMiddleware (the body is already bounded) and
LatencyMiddleware (``scope["route"]`` is set to the FastAPI route, so the
latency histogram keeps its route labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send


class CounterRoutes:
    def __init__(
        self,
        app: ASGIApp,
        fastapi_app: FastAPI,
        router: APIRouter,
        handlers: dict[str, Callable[..., Any]],
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.handlers = handlers
        self.routes = {
            route.path: route
            for route in router.routes
            if isinstance(route, APIRoute) and route.path in handlers and "POST" in (route.methods or ())
        }
        missing = set(handlers) - set(self.routes)
        if missing:  # a renamed route would silently fall back to the slow way
            raise RuntimeError(f"no FastAPI route for {sorted(missing)}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes[scope["path"]]
        scope["app"] = self.fastapi_app  # request.app, as under FastAPI's router
        body = b""
        more = True
        while more:  # already read and bounded by BodyLimitMiddleware: one message
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = Request(scope, receive)
        try:
            response = await anyio.to_thread.run_sync(handler, body, request, self.fastapi_app.state.ctx)
        except Exception as exc:
            response = await self._render(request, exc)
        await response(scope, receive, send)

    async def _render(self, request: Request, exc: Exception) -> Any:
        """The application's own handler for this exception (the nearest class in its MRO)."""
        handlers = self.fastapi_app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return await handler(request, exc)  # type: ignore[misc]  # errors.install: all async
        raise exc  # pragma: no cover - errors.install registers a handler for Exception
