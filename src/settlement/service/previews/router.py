"""HTTP route of preview records (reviewers and admins; a district-scoped reviewer: its district's persons)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import exists, select

from settlement.claims.person_id import normalize_person_id
from settlement.service import pages
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.deps import Ctx, ReadSession, require
from settlement.service.persons.models import Person

from .models import PreviewRecord

router = APIRouter(prefix="/v1/previews", tags=["previews"])

AuditKey = Annotated[Principal, Depends(require(Role.REVIEWER, Role.ADMIN))]


class PreviewRecordOut(BaseModel):
    at: dt.datetime
    actor: str = Field(description="the key id (or staff username) that previewed")
    hospital_id: str
    person_id: str
    claim_id: str


class PreviewPage(BaseModel):
    items: list[PreviewRecordOut]
    next_cursor: str | None


@router.get(
    "",
    response_model=PreviewPage,
    summary="Who previewed which person's claims, oldest first (written within about a second); a reviewer"
    " scoped to a district sees the previews of the persons registered in it",
)
def list_previews(
    principal: AuditKey,
    session: ReadSession,
    ctx: Ctx,
    person_id: Annotated[str | None, Query(max_length=18)] = None,
    hospital_id: Annotated[str | None, Query(max_length=128)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PreviewPage:
    query = select(PreviewRecord).where(PreviewRecord.id > (pages.decode_cursor(cursor, "s", int) if cursor else 0))
    if person_id is not None:
        query = query.where(PreviewRecord.person_id == normalize_person_id(person_id))
    if hospital_id is not None:
        query = query.where(PreviewRecord.hospital_id == hospital_id)
    if principal.district is not None:  # as the settlements and persons lists: the district's persons only
        query = query.where(exists().where(
            Person.person_id == PreviewRecord.person_id, Person.district.startswith(principal.district, autoescape=True)
        ))
    rows = list(session.scalars(query.order_by(PreviewRecord.id).limit(limit + 1)))
    page = rows[:limit]
    return PreviewPage(
        items=[
            PreviewRecordOut(at=r.at, actor=r.actor, hospital_id=r.hospital_id, person_id=r.person_id,
                             claim_id=r.claim_id)
            for r in page
        ],
        next_cursor=pages.encode_cursor("s", page[-1].id) if len(rows) > limit else None,
    )
