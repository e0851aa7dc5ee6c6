"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .deps import AnyKey, Ctx
from .errors import unavailable_response
from .metrics import render

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Readiness: the database answers, on the counter's own connections too", responses={503: {}}
)
async def readyz(ctx: Ctx) -> Any:
    try:
        await run_in_threadpool(ctx.db.ping)
    except Exception:
        return unavailable_response(
            ctx.settings.retry_after_seconds, "/readyz", "the database is unreachable"
        )
    return JSONResponse({"status": "ready", "database": ctx.db.dialect})


@router.get("/metrics", summary="Prometheus metrics (any key)", response_class=Response)
def metrics(principal: AnyKey) -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
