"""HTTP routes of fund pools."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.deps import PROBLEM, Ctx, ReadSession, require

from .service import pool_status

router = APIRouter(prefix="/v1/funds", tags=["funds"])

ReaderKey = Annotated[Principal, Depends(require(Role.REVIEWER, Role.INSURER, Role.ADMIN))]


class PoolOut(BaseModel):
    fund_id: str
    name: str
    policy_year: int
    schedule: str
    pool: str | None
    used: str
    remaining: str | None


@router.get(
    "/{fund_id}/pools/{year}",
    response_model=PoolOut,
    summary="A charity fund's annual pool: pool, used, remaining (null pool: unlimited)",
    responses={403: PROBLEM, 404: PROBLEM},
)
def get_pool(
    fund_id: str,
    year: Annotated[int, Path(ge=1900, le=9999)],
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
) -> dict[str, Any]:
    return pool_status(session, ctx, principal, fund_id, year)
