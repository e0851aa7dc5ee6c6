"""HTTP routes of statements, their lines and period closes (thin: statements.service does the work).

JSON, or a streamed CSV (BOM), `.xlsx` or Parquet by ``format=`` or ``Accept``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from settlement.money import format_fen
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.deps import PROBLEM, Ctx, ReadSession, require
from settlement.service.errors import invalid_request
from settlement.service.exports import Format, file_response, pick_format

from . import service
from .service import LINE_COLUMNS, LINES_LIMIT, ROW_COLUMNS, By

router = APIRouter(prefix="/v1/statements", tags=["statements"])

ReaderKey = Annotated[Principal, Depends(require(Role.INSURER, Role.ADMIN))]
FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            "application/vnd.apache.parquet": {},
        },
        "description": "JSON, or CSV / .xlsx / Parquet by format= or Accept",
    },
    403: PROBLEM,
    404: PROBLEM,
}
FundQ = Annotated[str, Query(description="basic, critical_illness, medical_assistance, a charity fund id, backstop…")]
FromQ = Annotated[dt.date, Query(alias="from", description="first business day (YYYY-MM-DD)")]
ToQ = Annotated[dt.date, Query(alias="to", description="last business day, inclusive")]
FormatQ = Annotated[Format | None, Query(description="json, csv, xlsx or parquet (else by Accept)")]


class StatementRow(BaseModel):
    period: str
    hospital_id: str
    fund: str
    adjusts: str | None
    settlements: int
    reversals: int
    amount: str


class Totals(BaseModel):
    settlements: int
    reversals: int
    amount: str


class StatementOut(BaseModel):
    fund: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    by: str
    time_zone: str
    closed: list[str]
    rows: list[StatementRow]
    totals: Totals


class LineOut(BaseModel):
    entry_id: int
    period: str
    settlement_id: str
    hospital_id: str
    claim_id: str
    person_id: str
    kind: str
    booked_at: dt.datetime
    adjusts: str | None
    amount: str


class LinesOut(BaseModel):
    fund: str
    items: list[LineOut]
    next_cursor: str | None


class CloseRow(BaseModel):
    hospital_id: str
    adjusts: str | None
    settlements: int
    reversals: int
    amount: str


class CloseOut(BaseModel):
    fund: str
    period: str
    settlements: int
    reversals: int
    amount: str
    lines: int
    lines_sha256: str
    through_entry: int
    rows: list[CloseRow]
    closed_at: dt.datetime
    closed_by: str


@router.get(
    "",
    response_model=StatementOut,
    summary="A fund's statement by day or month: settlements, reversals and amount per hospital",
    description="Booked by the date (SETTLEMENT_TIMEZONE) the settlement or reversal was made; a reversal of a"
    " closed month's settlement is an adjustment row naming that month (`adjusts`).",
    responses=FILES,
)
def get_statement(
    request: Request,
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
    fund: FundQ,
    start: FromQ,
    end: ToQ,
    hospital_id: Annotated[str | None, Query()] = None,
    by: Annotated[By, Query()] = "month",
    format: FormatQ = None,
) -> Any:
    fmt = pick_format(request, format)
    out = service.statement(session, ctx, principal, fund, start, end, hospital_id=hospital_id, by=by)
    if fmt != "json":
        name = f"statement-{fund}-{start}-{end}"
        return file_response(fmt, ROW_COLUMNS, out["rows"], name, sheet="对账单")
    for row in out["rows"]:
        row["amount"] = format_fen(row["amount"])
    out["totals"]["amount"] = format_fen(out["totals"]["amount"])
    return out


@router.get(
    "/lines",
    response_model=LinesOut,
    summary="One line per ledger entry of a fund booked in the period, by entry id (keyset pages in JSON)",
    responses=FILES,
)
def get_lines(
    request: Request,
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
    fund: FundQ,
    start: FromQ,
    end: ToQ,
    hospital_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=LINES_LIMIT)] = 500,
    cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
    format: FormatQ = None,
) -> Any:
    fmt = pick_format(request, format)
    after = _cursor(cursor)
    if fmt != "json":
        service.lines(session, ctx, principal, fund, start, end)  # the fund checks, before the stream starts
        return file_response(
            fmt,
            LINE_COLUMNS,
            _stream(ctx, principal, fund, start, end, after, hospital_id),
            f"statement-lines-{fund}-{start}-{end}",
            sheet="明细",
        )
    items = list(
        service.lines(session, ctx, principal, fund, start, end, after=after, limit=limit + 1, hospital_id=hospital_id)
    )
    more = len(items) > limit
    items = items[:limit]
    for item in items:
        item["amount"] = format_fen(item["amount"])
    return LinesOut(
        fund=fund,
        items=[LineOut.model_validate(i) for i in items],
        next_cursor=str(items[-1]["entry_id"]) if more else None,
    )


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise invalid_request("bad cursor", [{"field": "cursor", "message": "pass next_cursor back as it came"}])
    return int(cursor)


def _stream(
    ctx: Ctx, principal: Principal, fund: str, start: dt.date, end: dt.date, after: int | None, hospital_id: str | None
) -> Iterator[dict[str, Any]]:
    """The lines on a session of the stream's own (the request's is closed before the body is sent)."""
    with ctx.db.read() as session:
        yield from service.lines(session, ctx, principal, fund, start, end, after=after, hospital_id=hospital_id)


@router.post(
    "/{fund}/{period}/close",
    status_code=201,
    response_model=CloseOut,
    summary="Close a month (月结): freeze its statement, totals and the SHA-256 of its lines; no reopening",
    responses={403: PROBLEM, 404: PROBLEM, 409: PROBLEM},
)
async def close_month(
    fund: str,
    period: Annotated[str, Path(description="YYYY-MM")],
    principal: ReaderKey,
    ctx: Ctx,
) -> Any:
    def run() -> dict[str, Any]:
        with ctx.db.write() as session:
            return service.close_period(session, ctx, principal, fund, period)

    return await run_in_threadpool(run)


@router.get(
    "/{fund}/closes",
    response_model=list[CloseOut],
    summary="A fund's closed months, in order",
    responses={403: PROBLEM, 404: PROBLEM},
)
def get_closes(fund: str, principal: ReaderKey, session: ReadSession, ctx: Ctx) -> Any:
    return service.list_closes(session, ctx, principal, fund)
