"""The FastAPI application: ``create_app()`` (also the uvicorn factory)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import Depends, FastAPI
from starlette.types import Scope

import settlement
from settlement import jit
from settlement.engine import Tables, compile_tables
from settlement.schedules import load_region
from settlement.web.install import install as install_web

from . import errors, logmask, openapi
from .config import Settings, region_dir
from .context import ServiceContext
from .counter_routes import CounterRoutes, FrontRoute, SettlementApp
from .db import BUSY_TIMEOUT, make_database
from .funds.router import router as funds_router
from .health import router as health_router
from .hospitals.router import router as hospitals_router
from .limits import BodyLimitMiddleware
from .metrics import LatencyMiddleware
from .persons.router import router as persons_router
from .pgloop import LoopConnections
from .previews.recorder import PreviewLog
from .previews.router import router as previews_router
from .reconciliations.router import router as reconciliations_router
from .reviews.flags import start_refresher
from .reviews.router import router as reviews_router
from .reviews.rules import rules_at
from .schedules.router import router as schedules_router
from .settlements.counter import warm_up
from .settlements.router import (
    counter_api,
    preview_counter,
    preview_on_loop,
    reversal_reason,
    reverse_counter,
    settle_counter,
)
from .settlements.router import router as settlements_router
from .simulations.router import router as simulations_router
from .statements.router import router as statements_router
from .strict import strict_request

log = logging.getLogger("settlement.service")

DESCRIPTION = """\
Real-time one-stop settlement (一站式结算) for hospital billing systems.

Every endpoint but `/healthz` and `/readyz` needs `Authorization: Bearer <key>`
(create keys with `settlement keys create`). Errors are `application/problem+json`
with a `code`: the SPEC §6 claim codes (`invalid_claim`, `invalid_person_id`,
`no_schedule`, `unknown_item`, `no_standard`) and the service's own
(`person_not_registered`, `identity_mismatch`, `hospital_mismatch`, `claim_conflict`, …).
Money is yuan as a string with two decimals.
"""


def load_tables(settings: Settings) -> Tables:
    return compile_tables(load_region(region_dir(settings.schedules)))


def create_app(settings: Settings | None = None, *, tables: Tables | None = None) -> SettlementApp:
    settings = settings or Settings()
    logmask.install()  # resident ids masked in every log line (service.logmask)
    tables = tables if tables is not None else load_tables(settings)
    warm_up(tables)  # on the kernels' Python source: ready at once
    jit.compile_in_background(lambda: warm_up(tables))  # then compiled, in a thread (settlement.jit)
    db = make_database(settings)
    ctx = ServiceContext(settings=settings, db=db, tables=tables, tz=ZoneInfo(settings.timezone))
    ctx.previews = PreviewLog(db)
    rules_at(str(settings.review_rules) if settings.review_rules else None)  # a bad rules file: no start

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # sync routes run in this many threads; the connection pool keeps as many connections
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        loop_conns = None
        if db.dialect == "postgresql":
            try:  # the counter's connections opened before the first request, not during the load
                await anyio.to_thread.run_sync(db.open_counter)
            except Exception as exc:  # the database may come up later: /readyz tells
                log.warning("counter connections not opened at start: %s", exc)
            # previews read on the loop, on connections of their own
            kwargs = {**db.counter_kwargs(), "application_name": "settlement-previews"}
            loop_conns = LoopConnections(
                db.counter_conninfo(), kwargs, settings.preview_connections,
                timeout=db.checkout_timeout, busy_timeout=BUSY_TIMEOUT,
            )
            await loop_conns.open()
        app.state.loop_conns = loop_conns
        refresher = start_refresher(ctx)  # review flags, in a thread of its own (reviews.flags)
        # What the worker built to start lives as long as it does: frozen, a full collection walks
        # only what requests made since, not all of it (docs/PERFORMANCE.md §3, row 23).
        gc.collect()
        gc.freeze()
        yield
        app.state.loop_conns = None
        if refresher is not None:
            refresher.stop()
        if loop_conns is not None:
            await loop_conns.close()
        ctx.previews.close()
        db.dispose()

    app = SettlementApp(
        title="Settlement service",
        version=settlement.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry hooks: the service exports Prometheus metrics (/metrics) and
        # logs; with no OpenTelemetry provider set up they cost ~0.1 ms a request for nothing
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        docs_url=None,  # /docs is the workspace's, with Swagger UI served locally (settlement.web)
        redoc_url=None,
        dependencies=[Depends(strict_request)],  # every route: service.strict
    )
    app.state.ctx = ctx
    errors.install(app, settings.retry_after_seconds)
    for router in (
        health_router,
        settlements_router,
        persons_router,
        funds_router,
        statements_router,
        reconciliations_router,
        simulations_router,
        schedules_router,
        reviews_router,
        hospitals_router,
        previews_router,
    ):
        app.include_router(router)
    install_web(app)  # the staff pages, /static, /docs
    openapi.install(app)  # the document says what every route answers (service.openapi)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, timeout=settings.body_timeout_seconds)
    app.add_middleware(LatencyMiddleware)
    # the counter's routes, answered ahead of the stack above (bounded and timed there the same way)
    app.counter = CounterRoutes(
        app,
        counter_api,
        [
            FrontRoute("/v1/settlements", settle_counter, _body_only),
            FrontRoute("/v1/settlements/preview", preview_on_loop, _body_only, on_loop=True)
            if db.dialect == "postgresql"
            else FrontRoute("/v1/settlements/preview", preview_counter, _body_only),
            FrontRoute("/v1/settlements/{settlement_id}/reversal", reverse_counter, _reversal),
        ],
        body_limit=settings.max_body_bytes,
        threads=settings.worker_threads,
        body_timeout=settings.body_timeout_seconds,
    )
    return app


def _body_only(body: bytes, _params: dict[str, Any], _scope: Scope) -> tuple[Any, ...]:
    return (body,)


def _reversal(body: bytes, params: dict[str, Any], scope: Scope) -> tuple[Any, ...]:
    header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
    return params["settlement_id"], reversal_reason(body, header)
