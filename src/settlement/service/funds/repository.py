"""All access to pool rows goes through this module.

The pool rows are the hottest rows of the service (every eligible claim of
the year draws on them). Lock order, everywhere: the person-year row first,
then pool rows in ascending fund_id; nothing is locked after them but the new
rows of the settlement itself. Keeping the order fixed rules out deadlocks
between settlements; changing how pools are kept (sharding, reservations)
means changing :func:`lock_pools` and :func:`add_pool_used` alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from settlement.service.db import insert_ignore

from .models import FundPool


def read_pools(session: Session, year: int, fund_ids: Iterable[str]) -> dict[str, int]:
    """Pool use as committed now, without locks (previews, reads); 0 for a fund not yet drawn on."""
    funds = sorted(set(fund_ids))
    used = dict.fromkeys(funds, 0)
    if funds:
        rows = session.execute(
            select(FundPool.fund_id, FundPool.used).where(
                FundPool.policy_year == year, FundPool.fund_id.in_(funds)
            )
        )
        used.update({fund: int(value) for fund, value in rows})
    return used


def lock_pools(session: Session, year: int, fund_ids: Iterable[str]) -> dict[str, int]:
    """Locks the pool rows of these funds for the year (created if absent), in fund_id order.

    Returns their use. Held until commit: no other settlement can draw on
    these pools in between, so a pool is never overdrawn (SPEC §5.5).
    """
    funds = sorted(set(fund_ids))
    if not funds:
        return {}
    present = set(
        session.scalars(
            select(FundPool.fund_id).where(
                FundPool.policy_year == year, FundPool.fund_id.in_(funds)
            )
        )
    )
    missing = [f for f in funds if f not in present]
    insert_ignore(
        session,
        FundPool.__table__,  # type: ignore[arg-type]
        [{"fund_id": f, "policy_year": year, "used": 0} for f in missing],
        ["fund_id", "policy_year"],
    )
    rows = session.execute(
        select(FundPool.fund_id, FundPool.used)
        .where(FundPool.policy_year == year, FundPool.fund_id.in_(funds))
        .order_by(FundPool.fund_id)
        .with_for_update()
    )
    return {fund: int(value) for fund, value in rows}


def add_pool_used(session: Session, year: int, deltas: dict[str, int]) -> None:
    """Adds to the use of pools locked by lock_pools in this transaction."""
    for fund, amount in sorted(deltas.items()):
        if amount:
            session.execute(
                update(FundPool)
                .where(FundPool.fund_id == fund, FundPool.policy_year == year)
                .values(used=FundPool.used + amount)
                .execution_options(synchronize_session=False)
            )
