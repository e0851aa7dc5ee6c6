"""HTTP route of daily statements (JSON, or CSV with Accept: text/csv)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.deps import Ctx, ReadSession, require

from .service import as_csv, daily

router = APIRouter(prefix="/v1/statements", tags=["statements"])

ReaderKey = Annotated[Principal, Depends(require(Role.INSURER, Role.ADMIN))]


class StatementRow(BaseModel):
    date: dt.date
    hospital_id: str
    layer: str
    fund: str
    settled: str
    reversed: str
    net: str
    settled_count: int
    reversed_count: int


class StatementOut(BaseModel):
    date: dt.date
    fund: str | None
    time_zone: str
    rows: list[StatementRow]


@router.get(
    "",
    response_model=StatementOut,
    summary="A day's settled and reversed totals per hospital and fund",
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with Accept: text/csv"}
    },
)
def statement(
    request: Request,
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
    date: Annotated[dt.date | None, Query(description="the business day; default: today")] = None,
    fund: Annotated[
        str | None,
        Query(
            description="basic, critical_illness, medical_assistance, a charity"
            " fund id, backstop, patient or hospital"
        ),
    ] = None,
) -> Any:
    day = date or ctx.now().astimezone(ctx.tz).date()
    rows = daily(session, principal, day, fund)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            as_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="statement-{day.isoformat()}.csv"'
            },
        )
    return {"date": day, "fund": fund, "time_zone": ctx.settings.timezone, "rows": rows}
