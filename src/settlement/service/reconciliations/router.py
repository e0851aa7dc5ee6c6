"""HTTP routes of reconciliation runs (thin: reconciliations.service does the work)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from settlement.reconcile import ITEM_COLUMNS
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.deps import PROBLEM, Ctx, ReadSession, require
from settlement.service.exports import Format, file_response, pick_format
from settlement.service.strict import VALUE_PATTERN, check_value, form_date, form_file, form_text, read_form

from . import service

router = APIRouter(prefix="/v1/reconciliations", tags=["reconciliations"])

InsurerKey = Annotated[Principal, Depends(require(Role.INSURER, Role.ADMIN))]


class Summary(BaseModel):
    matched: int
    amount_mismatch: int
    only_ours: int
    only_theirs: int
    duplicate_theirs: int
    reversed_ours: int
    ours_total: str
    theirs_total: str
    difference: str


class RunCreated(BaseModel):
    id: str
    summary: Summary


class RunOut(BaseModel):
    id: str
    fund: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    input_name: str
    input_sha256: str
    ran_by: str
    ran_at: dt.datetime
    summary: Summary


class ItemOut(BaseModel):
    kind: str
    kind_label: str
    hospital_id: str | None
    claim_id: str
    settlement_id: str | None
    ours: str | None
    theirs: str | None
    difference: str
    line: int | None


@router.post(
    "",
    status_code=201,
    response_model=RunCreated,
    summary="Reconcile (对账) their file (CSV UTF-8/GBK or .xlsx: hospital_id,claim_id,amount[,settlement_id])"
    " against the ledger's net per settlement of the fund in the period",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["fund", "from", "to", "file"],
                        "properties": {
                            "fund": {"type": "string", "minLength": 1, "pattern": VALUE_PATTERN},
                            "from": {"type": "string", "format": "date"},
                            "to": {"type": "string", "format": "date"},
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                }
            },
        }
    },
    responses={400: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
async def create_run(request: Request, principal: InsurerKey, ctx: Ctx) -> Any:
    form = await read_form(
        request, ("fund", "from", "to", "file"), "send multipart/form-data with the fields fund, from, to and file"
    )
    fund = form_text(form.get("fund"), "fund")
    start, end = form_date(form.get("from"), "from"), form_date(form.get("to"), "to")
    upload = form_file(form, "file", "send their file as the form field 'file'")
    data = await upload.read()
    name = upload.filename or "file"
    check_value("file", name, "form")  # the file's name is stored with the run: no NUL, no bidi

    def work() -> dict[str, Any]:
        with ctx.db.write() as session:
            return service.run(session, ctx, principal, fund, start, end, name, data)

    return await run_in_threadpool(work)


@router.get("/{run_id}", response_model=RunOut, summary="A reconciliation run", responses={404: PROBLEM})
def get_run(run_id: str, principal: InsurerKey, session: ReadSession, ctx: Ctx) -> Any:
    return service.get_run(session, ctx, principal, run_id)


@router.get(
    "/{run_id}/items",
    response_model=list[ItemOut],
    summary="A run's items (optionally of one kind), as JSON, CSV or .xlsx (format= or Accept)",
    responses={404: PROBLEM},
)
def get_items(
    request: Request,
    run_id: str,
    principal: InsurerKey,
    session: ReadSession,
    ctx: Ctx,
    kind: Annotated[str | None, Query(description="matched, amount_mismatch, only_ours, …")] = None,
    format: Annotated[Format | None, Query(description="json, csv, xlsx or parquet")] = None,
) -> Any:
    fmt = pick_format(request, format)
    rows = list(service.items(session, ctx, principal, run_id, kind))
    if fmt != "json":
        return file_response(fmt, ITEM_COLUMNS, rows, f"reconciliation-{run_id}", sheet="对账明细")
    return [service.as_json(r) for r in rows]
