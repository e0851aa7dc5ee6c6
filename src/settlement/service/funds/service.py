"""Pool status of a charity fund, or of the emergency relief fund, in a policy year."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from settlement.engine.state import EMERGENCY_RELIEF
from settlement.money import format_fen
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.errors import forbidden, not_found

from .repository import read_pools

LAYER_FUNDS = ("basic", "critical_illness", "medical_assistance")
TAIL_FUNDS = ("backstop", "patient", "hospital")


def fund_ids(ctx: ServiceContext) -> list[str]:
    """Every fund a ledger entry can name, in settling order: the layers, each charity fund of the
    schedules, the emergency relief fund, then the backstop and the two shares that are nobody's
    fund (patient, hospital)."""
    return fund_ids_of(ctx.tables)


def fund_ids_of(tables: Any) -> list[str]:
    """fund_ids of compiled schedule tables (for a command without a service context)."""
    return [*LAYER_FUNDS, *tables.schedules.fund_ids, EMERGENCY_RELIEF, *TAIL_FUNDS]


def visible_fund(ctx: ServiceContext, principal: Principal, fund_id: str) -> str:
    """The fund id if it exists and the caller may see it: 404 naming the funds that exist for an
    unknown one, 403 for a fund outside a fund-limited insurer key's funds."""
    known = fund_ids(ctx)
    if fund_id not in known:
        raise not_found(f"no fund {fund_id!r}; the funds are: {', '.join(known)}")
    if not principal.sees_fund(fund_id):
        raise forbidden(f"this key sees only the funds {', '.join(sorted(principal.funds or ()))}")
    return fund_id


def pool_status(
    session: Session, ctx: ServiceContext, principal: Principal, fund_id: str, year: int
) -> dict[str, Any]:
    """Pool, used and remaining. The pool is that of the version in force at the end of the
    year (the one later claims of the year settle under); null means unlimited."""
    visible_fund(ctx, principal, fund_id)  # 404 naming the funds for an unknown one, 403 for another key's
    schedules = ctx.tables.schedules
    index = schedules.index_for(dt.date(year, 12, 31))
    if index < 0:
        raise not_found(f"no fee schedule is in force in {year}")
    version = schedules.versions[index]
    if fund_id == EMERGENCY_RELIEF and version.emergency_relief is not None:
        name, pool = "疾病应急救助基金", version.emergency_relief.annual_pool_fen
    else:
        fund = next((f for f in version.charity_funds if f.id == fund_id), None)
        if fund is None:
            raise not_found(f"no charity fund {fund_id} in schedule {version.id}")
        name, pool = fund.name, fund.annual_pool_fen
    used = read_pools(session, year, [fund_id])[fund_id]
    return {
        "fund_id": fund_id,
        "name": name,
        "policy_year": year,
        "schedule": version.id,
        "pool": None if pool is None else format_fen(pool),
        "used": format_fen(used),
        "remaining": None if pool is None else format_fen(max(0, pool - used)),
    }
