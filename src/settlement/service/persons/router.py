"""HTTP routes of the person registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from settlement.claims.person_id import normalize_person_id
from settlement.money import format_fen
from settlement.service.accumulators.repository import read_person_year
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.db import run_transaction
from settlement.service.deps import Ctx, ReadSession, require
from settlement.service.errors import ServiceError, not_found

from . import service
from .models import Person
from .repository import get_person
from .schemas import AccumulatorsOut, CategoryPeriod, ImportOut, PersonIn, PersonOut

router = APIRouter(prefix="/v1/persons", tags=["persons"])

WriterKey = Annotated[Principal, Depends(require(Role.REVIEWER, Role.ADMIN))]
ReaderKey = Annotated[Principal, Depends(require(Role.REVIEWER, Role.ADMIN, Role.INSURER))]
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


def person_out(person: Person) -> PersonOut:
    return PersonOut(
        person_id=person.person_id,
        scheme=person.scheme,
        categories=[
            CategoryPeriod(category=p.category, valid_from=p.valid_from, valid_to=p.valid_to)
            for p in person.periods
        ],
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


@router.put(
    "/{person_id}",
    response_model=PersonOut,
    summary="Register a person or replace their entry (scheme and category periods)",
    responses={201: {"description": "created"}, 422: PROBLEM},
)
def put_person(
    person_id: str, data: PersonIn, principal: WriterKey, ctx: Ctx, response: Response
) -> PersonOut:
    def work(session: Any) -> tuple[PersonOut, bool]:
        person, created = service.put_person(session, person_id, data, principal.key_id, ctx.now())
        return person_out(person), created

    out, created = run_transaction(ctx.db.write, work, retries=ctx.settings.transaction_retries)
    response.status_code = 201 if created else 200
    return out


@router.post(
    "/import",
    response_model=ImportOut,
    summary="Import persons: CSV person_id,scheme,category,valid_from,valid_to; all or none",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
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
    responses={422: PROBLEM},
)
async def import_persons(request: Request, principal: WriterKey, ctx: Ctx) -> ImportOut:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(400, "invalid_request", "send the CSV as the form field 'file'")
        raw = await upload.read()
    else:
        raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ServiceError(422, "invalid_request", "the CSV must be UTF-8") from None  # any bytes fit the document
    persons, periods = await run_in_threadpool(
        run_transaction,
        ctx.db.write,
        lambda session: service.import_csv(session, text, principal.key_id, ctx.now()),
        retries=ctx.settings.transaction_retries,
    )
    return ImportOut(persons=persons, periods=periods)


@router.get(
    "/{person_id}", response_model=PersonOut, summary="A registry entry", responses={404: PROBLEM}
)
def read_person(person_id: str, principal: ReaderKey, session: ReadSession) -> PersonOut:
    person = get_person(session, normalize_person_id(person_id))
    if person is None:
        raise not_found(f"person {person_id} is not in the registry")
    return person_out(person)


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
    year: Annotated[
        int | None, Query(ge=1900, le=9999, description="policy year; default: this year")
    ] = None,
) -> AccumulatorsOut:
    pid = normalize_person_id(person_id)
    if get_person(session, pid) is None:
        raise not_found(f"person {person_id} is not in the registry")
    policy_year = year if year is not None else ctx.now().astimezone(ctx.tz).year
    totals = read_person_year(session, pid, policy_year)
    charity = dict.fromkeys(ctx.tables.schedules.fund_ids, 0)
    charity.update(totals.charity_paid)
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
