"""HTTP routes of the person registry."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from settlement.claims.models import Category, Scheme
from settlement.money import format_fen
from settlement.service.accumulators.repository import read_person_year
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.db import run_transaction
from settlement.service.deps import PROBLEM, Ctx, ReadSession, require
from settlement.service.errors import ServiceError
from settlement.service.strict import media_type
from settlement.tabular import XLSX_MEDIA_TYPE

from . import service
from .importing import ImportReport
from .schemas import (
    AccumulatorsOut,
    DistrictPrefix,
    HistoryOut,
    ImportOut,
    PersonIn,
    PersonOut,
    PersonPage,
    PositionOut,
)

router = APIRouter(prefix="/v1/persons", tags=["persons"])

WriterKey = Annotated[Principal, Depends(require(Role.REVIEWER, Role.ADMIN))]
ReaderKey = Annotated[Principal, Depends(require(Role.REVIEWER, Role.ADMIN, Role.INSURER))]
YearQ = Annotated[int | None, Query(ge=1900, le=9999, description="policy year; default: this year")]


@router.get(
    "",
    response_model=PersonPage,
    summary="Persons by id, searched and filtered, by cursor (names for reviewer and admin keys only)",
    responses={400: PROBLEM, 422: PROBLEM},  # 422: a cursor not the service's (service.openapi)
)
def list_persons(
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="an id prefix, or part of the name (reviewer/admin)"),
    ] = None,
    district: Annotated[
        DistrictPrefix | None, Query(description="行政区划代码 or its 2/4-digit prefix (province, city)")
    ] = None,
    category: Annotated[Category | None, Query(description="the category in force on `on`")] = None,
    scheme: Scheme | None = None,
    on: Annotated[dt.date | None, Query(description="the day category is checked on; default today")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return service.search(
        session, principal, q=q, district=district, category=category, scheme=scheme,
        on=on or ctx.today(), cursor=cursor,
        limit=min(limit, ctx.settings.list_limit_max),
    )


@router.put(
    "/{person_id}",
    response_model=PersonOut,
    summary="Register a person or replace their whole entry (omitted name or district: none); recorded in history",
    responses={201: {"description": "created"}, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
def put_person(
    person_id: str, data: PersonIn, principal: WriterKey, ctx: Ctx, response: Response
) -> PersonOut:
    def work(session: Any) -> tuple[PersonOut, bool]:
        person, created = service.put_person(session, principal, person_id, data, ctx.now())
        return service.person_out(person, principal), created

    out, created = run_transaction(ctx.db.write, work, retries=ctx.settings.transaction_retries)
    response.status_code = 201 if created else 200
    return out


IMPORT_MEDIA_TYPES = ("text/csv", XLSX_MEDIA_TYPE)
ANY_FILE: dict[str, Any] = {
    "description": "the file's bytes, whatever they are: a file that cannot be read (not CSV/.xlsx, not"
    " UTF-8/GBK, no header) is answered like one with wrong rows, with its problems in the report",
}
"""The import's body as it is accepted: any bytes. An import client (a clerk's, the staff page's) reads
the report's problems (line, column, message) to correct the file; a bare 400 for an unreadable file
would be a second kind of answer to the same question, so the document constrains nothing here."""


@router.post(
    "/import",
    response_model=ImportOut,
    summary="Import persons from CSV (UTF-8 or GBK) or .xlsx; dry_run=true checks only; all or none",
    description=(
        "Columns by code or Chinese header: person_id (公民身份号码), scheme (参保类型), category"
        " (救助对象类别), valid_from (开始日期), valid_to (结束日期), name (姓名), district (行政区划代码);"
        " values as codes or Chinese labels. One row per category period. Each person in the file has"
        " their entry replaced (a file without a name or district column keeps those). With"
        " dry_run=true: 200 with every row's problems and nothing written; otherwise 200 when"
        " everything was written, 422 invalid_import (every problem in errors) when nothing was."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                # any bytes are a file to read: what is wrong with them is in the report (ANY_FILE)
                "text/csv": {"schema": ANY_FILE},
                XLSX_MEDIA_TYPE: {"schema": ANY_FILE},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
    responses={403: PROBLEM, 404: PROBLEM, 415: PROBLEM, 422: PROBLEM},
)
async def import_persons(
    request: Request,
    principal: WriterKey,
    ctx: Ctx,
    dry_run: Annotated[bool, Query(description="check every row and write nothing")] = False,
) -> ImportOut:
    content_type = media_type(request.headers.get("content-type"))
    filename: str | None = None
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(400, "invalid_request", "send the file as the form field 'file'")
        raw = await upload.read()
        filename = upload.filename
    elif content_type in IMPORT_MEDIA_TYPES:
        raw = await request.body()
    else:
        raise ServiceError(
            415, "unsupported_media_type",
            "send text/csv, an .xlsx body (" + XLSX_MEDIA_TYPE + ") or multipart/form-data with 'file'",
        )
    if dry_run:
        def check() -> ImportReport:
            with ctx.db.read() as session:
                return service.import_check(session, ctx, principal, raw, filename)

        report = await run_in_threadpool(check)
    else:
        report = await run_in_threadpool(
            run_transaction,
            ctx.db.write,
            lambda session: service.import_commit(session, ctx, principal, raw, filename),
            retries=ctx.settings.transaction_retries,
        )
    return ImportOut.model_validate(report.as_dict())


@router.get(
    "/{person_id}", response_model=PersonOut, summary="A registry entry", responses={404: PROBLEM}
)
def read_person(person_id: str, principal: ReaderKey, session: ReadSession) -> PersonOut:
    return service.person_out(service.visible_person(session, principal, person_id), principal)


@router.get(
    "/{person_id}/history",
    response_model=HistoryOut,
    summary="Every change to the person's entry (who, when, before, after), oldest first",
    responses={404: PROBLEM},
)
def read_history(person_id: str, principal: WriterKey, session: ReadSession) -> HistoryOut:
    return service.history(session, principal, person_id)


@router.get(
    "/{person_id}/accumulators",
    response_model=AccumulatorsOut,
    summary="The person's running totals of a policy year (zero before the first settlement)",
    responses={404: PROBLEM},
)
def read_accumulators(
    person_id: str,
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
    year: YearQ = None,
) -> AccumulatorsOut:
    pid = service.visible_person(session, principal, person_id).person_id
    policy_year = year if year is not None else ctx.today().year
    totals = read_person_year(session, pid, policy_year)
    charity = {**dict.fromkeys(ctx.tables.schedules.fund_ids, 0), **totals.charity_paid}
    return AccumulatorsOut(
        person_id=pid,
        policy_year=policy_year,
        basic_paid={vt: format_fen(v) for vt, v in totals.basic_paid.items()},
        critical_base=format_fen(totals.critical_base),
        critical_paid=format_fen(totals.critical_paid),
        assistance_base=format_fen(totals.assistance_base),
        assistance_paid=format_fen(totals.assistance_paid),
        charity_paid={f: format_fen(v) for f, v in charity.items()},
    )


@router.get(
    "/{person_id}/position",
    response_model=PositionOut,
    summary="The person's policy year against the caps of the schedule in force, per layer",
    responses={404: PROBLEM, 422: PROBLEM},
)
def read_position(
    person_id: str,
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
    year: YearQ = None,
) -> PositionOut:
    policy_year = year if year is not None else ctx.today().year
    found = service.year_position(session, ctx, person_id, policy_year, principal)
    body = found.as_dict()

    def money(value: int | None) -> str | None:
        return None if value is None else format_fen(value)

    body["rows"] = [
        {**row, "paid": format_fen(row["paid"]), "cap": money(row["cap"]), "remaining": money(row["remaining"])}
        for row in body["rows"]
    ]
    body["critical_base"] = format_fen(found.critical_base)
    body["assistance_base"] = format_fen(found.assistance_base)
    return PositionOut.model_validate(body)
