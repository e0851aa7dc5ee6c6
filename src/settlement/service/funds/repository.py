"""All access to pool rows goes through this module (and the counter's write functions of migration 0002):
SQLAlchemy Core, the same statements on PostgreSQL and SQLite.

The pool rows are the hottest rows of the service (every eligible claim of
the year draws on them). A fund-year is POOL_SHARDS rows on PostgreSQL, each
with an allowance, the allowances adding up to the pool (funds.models). Lock
order, everywhere: the person-year row first, then pool rows in ascending
fund_id and, within a fund, ascending shard; nothing is locked after them but
the new rows of the settlement itself. Keeping the order fixed rules out
deadlocks between settlements.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from settlement.service.db import insert_ignore

from .models import FundPool

POOL_SHARDS = 4
"""Rows per limited fund-year on PostgreSQL: draws on a fund-year that has room go to any of them,
so up to this many commit side by side instead of one per WAL flush. Every exact total (a spent
pool, the last money, the locked way) locks all of them, so more is not free."""

def read_pools(session: Session, year: int, fund_ids: Iterable[str]) -> dict[str, int]:
    """Pool use as committed now, without locks (previews, reads); 0 for a fund not yet drawn on."""
    funds = sorted(set(fund_ids))
    used = dict.fromkeys(funds, 0)
    if funds:
        rows = session.execute(
            select(FundPool.fund_id, func.sum(FundPool.used))
            .where(FundPool.policy_year == year, FundPool.fund_id.in_(funds))
            .group_by(FundPool.fund_id)
        )
        used.update({fund: int(value) for fund, value in rows})
    return used


def lock_pools(
    session: Session, year: int, fund_ids: Iterable[str], limits: dict[str, int | None] | None = None
) -> dict[str, int]:
    """Locks every row of these funds' pools for the year (created if absent), in fund_id, shard order.

    Returns their use. Held until commit: no other settlement can draw on
    these pools in between, so a pool is never overdrawn (SPEC §5.5).
    ``limits`` (PostgreSQL): the pools' sizes, for the shards' allowances
    (``pool_shards_ensure``, migration 0002); SQLite keeps one row, shard 0.
    """
    funds = sorted(set(fund_ids))
    if not funds:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        for fund in funds:
            session.execute(select(func.pool_shards_ensure(fund, year, (limits or {}).get(fund), POOL_SHARDS)))
    else:
        insert_ignore(
            session,
            FundPool.__table__,  # type: ignore[arg-type]
            [{"fund_id": f, "policy_year": year, "shard": 0, "used": 0} for f in funds],
            ["fund_id", "policy_year", "shard"],
        )
    rows = session.execute(
        select(FundPool.fund_id, FundPool.used)
        .where(FundPool.policy_year == year, FundPool.fund_id.in_(funds))
        .order_by(FundPool.fund_id, FundPool.shard)
        .with_for_update()
    )
    used = dict.fromkeys(funds, 0)
    for fund, value in rows:
        used[fund] += int(value)
    return used


def add_pool_used(
    session: Session, year: int, deltas: dict[str, int], limits: dict[str, int | None] | None = None
) -> None:
    """Adds to the use of pools locked by lock_pools in this transaction: shard 0 takes it, its
    allowance with it (NULL on SQLite stays NULL).

    PostgreSQL: then spreads the allowances anew over the fund's shards
    (``pool_rebalance``, migration 0002), so that they add up to the pool again.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    for fund, amount in sorted(deltas.items()):
        if not amount:
            continue
        done = session.execute(
            update(FundPool)
            .where(FundPool.fund_id == fund, FundPool.policy_year == year, FundPool.shard == 0)
            .values(used=FundPool.used + amount, allowance=FundPool.allowance + amount)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError(f"pool {fund}/{year} has no shard 0 to add to")
        if postgres:
            session.execute(select(func.pool_rebalance(fund, year, (limits or {}).get(fund))))
