"""Prometheus metrics: request latency by route, and what the counter did.

Set PROMETHEUS_MULTIPROC_DIR to aggregate across ``--workers``; without it each
worker process reports its own.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_LATENCY = Histogram(
    "settlement_http_request_duration_seconds",
    "Latency of HTTP requests, by method, route template and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SETTLEMENTS = Counter(
    "settlement_settlements_total",
    "Settle calls by outcome: created, replayed, conflict, rejected",
    ["outcome"],
)
PREVIEWS = Counter("settlement_previews_total", "Previews computed")
REVERSALS = Counter(
    "settlement_reversals_total", "Reversal calls by outcome: reversed, already", ["outcome"]
)
POOL_PATHS = Counter(
    "settlement_pool_paths_total",
    "PostgreSQL settle attempts by how they met the charity pools: late (draw written last, row"
    " locked to commit only), shared (a spent pool held FOR SHARE), last (took what a pool had left,"
    " written only on the same pool use), locked (pool rows locked"
    " before the engine: the pool moved or sits at its limit)",
    ["path"],
)
TRANSACTION_RETRIES = Counter(
    "settlement_transaction_retries_total",
    "Transactions re-run after a deadlock or serialization failure",
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class LatencyMiddleware:
    """Pure ASGI: times every HTTP request and labels it with the matched route's template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            REQUEST_LATENCY.labels(scope.get("method", ""), template, str(status["code"])).observe(
                time.perf_counter() - start
            )
