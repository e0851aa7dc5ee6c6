"""HTTP routes of the hospital registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.db import run_transaction
from settlement.service.deps import PROBLEM, Ctx, ReadSession, require
from settlement.service.errors import not_found

from . import service
from .models import Hospital
from .repository import get_hospital, history, list_hospitals
from .schemas import HospitalChangeOut, HospitalIn, HospitalOut

router = APIRouter(prefix="/v1/hospitals", tags=["hospitals"])

AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
ReaderKey = Annotated[Principal, Depends(require(Role.HOSPITAL, Role.REVIEWER, Role.INSURER, Role.ADMIN))]
AuditKey = Annotated[Principal, Depends(require(Role.REVIEWER, Role.INSURER, Role.ADMIN))]
HospitalId = Annotated[str, Path(min_length=1, max_length=128, description="the hospital's id, as claims state it")]


def hospital_out(row: Hospital) -> HospitalOut:
    return HospitalOut.model_validate(row, from_attributes=True)


@router.put(
    "/{hospital_id}",
    response_model=HospitalOut,
    summary="Register a hospital or replace its entry (name, level, district); every change is recorded",
    responses={201: {"description": "created", "model": HospitalOut}, 422: PROBLEM},
)
def put_hospital(
    hospital_id: HospitalId, data: HospitalIn, principal: AdminKey, ctx: Ctx, response: Response
) -> HospitalOut:
    def work(session: Any) -> tuple[HospitalOut, bool]:
        row, created = service.put_hospital(session, hospital_id, data, principal.actor, ctx.now())
        return hospital_out(row), created

    out, created = run_transaction(ctx.db.write, work, retries=ctx.settings.transaction_retries)
    response.status_code = 201 if created else 200
    return out


@router.get("", response_model=list[HospitalOut], summary="The registered hospitals, by id")
def read_hospitals(principal: ReaderKey, session: ReadSession) -> list[HospitalOut]:
    return [hospital_out(row) for row in list_hospitals(session)]


@router.get("/{hospital_id}", response_model=HospitalOut, summary="A hospital's entry", responses={404: PROBLEM})
def read_hospital(hospital_id: HospitalId, principal: ReaderKey, session: ReadSession) -> HospitalOut:
    row = get_hospital(session, hospital_id)
    if row is None:
        raise not_found(f"hospital {hospital_id} is not in the registry")
    return hospital_out(row)


@router.get(
    "/{hospital_id}/history",
    response_model=list[HospitalChangeOut],
    summary="Every change to a hospital's entry, oldest first: who, when, before, after",
    responses={404: PROBLEM},
)
def read_history(hospital_id: HospitalId, principal: AuditKey, session: ReadSession) -> list[HospitalChangeOut]:
    changes = history(session, hospital_id)
    if not changes and get_hospital(session, hospital_id) is None:
        raise not_found(f"hospital {hospital_id} is not in the registry")
    return [HospitalChangeOut(at=c.at, actor=c.actor, before=c.before, after=c.after) for c in changes]
