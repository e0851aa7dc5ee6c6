"""All access to pool rows goes through this module (and the counter's write functions of migration 0002).

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

from settlement.service.db import insert_ignore, pg_connection, pg_execute

from .models import FundPool

POOL_SHARDS = 4
"""Rows per limited fund-year on PostgreSQL: draws on a fund-year that has room go to any of them,
so up to this many commit side by side instead of one per WAL flush. Every exact total (a spent
pool, the last money, the locked way) locks all of them, so more is not free."""

PG_READ = (
    "SELECT fund_id, sum(used) FROM fund_pools WHERE policy_year = %s AND fund_id = ANY(%s) GROUP BY fund_id"
)
# every shard row of these fund-years, in lock order; the caller sums them
PG_LOCK = (
    "SELECT fund_id, used FROM fund_pools WHERE policy_year = %s AND fund_id = ANY(%s)"
    " ORDER BY fund_id, shard FOR UPDATE"
)
PG_ENSURE = "SELECT pool_shards_ensure(%s, %s, %s, %s)"
PG_REBALANCE = "SELECT pool_rebalance(%s, %s, %s)"
# a draw of the locked way: shard 0 takes it (its allowance with it: pool_rebalance spreads them anew)
PG_ADD = (
    "UPDATE fund_pools SET used = used + %(amount)s, allowance = allowance + %(amount)s"
    " WHERE fund_id = %(fund)s AND policy_year = %(year)s AND shard = 0"
)


def read_pools(session: Session, year: int, fund_ids: Iterable[str]) -> dict[str, int]:
    """Pool use as committed now, without locks (previews, reads); 0 for a fund not yet drawn on."""
    funds = sorted(set(fund_ids))
    used = dict.fromkeys(funds, 0)
    pg = pg_connection(session) if funds else None
    if pg is not None:
        used.update({fund: int(value) for fund, value in pg_execute(pg, PG_READ, (year, funds))})
        return used
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
    ``limits`` (PostgreSQL): the pools' sizes, for the shards' allowances.
    """
    funds = sorted(set(fund_ids))
    if not funds:
        return {}
    pg = pg_connection(session)
    if pg is not None:
        for fund in funds:
            pg_execute(pg, PG_ENSURE, (fund, year, (limits or {}).get(fund), POOL_SHARDS))
        used = dict.fromkeys(funds, 0)
        for fund, value in pg_execute(pg, PG_LOCK, (year, funds)):
            used[fund] += int(value)
        return used
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
        [{"fund_id": f, "policy_year": year, "shard": 0, "used": 0} for f in missing],
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
    """Adds to the use of pools locked by lock_pools in this transaction (shard 0 takes it).

    PostgreSQL: then spreads the allowances anew over the fund's shards
    (pool_rebalance), so that they add up to the pool again.
    """
    pg = pg_connection(session)
    for fund, amount in sorted(deltas.items()):
        if not amount:
            continue
        if pg is not None:
            if pg_execute(pg, PG_ADD, {"amount": amount, "fund": fund, "year": year}).rowcount != 1:
                raise RuntimeError(f"pool {fund}/{year} has no shard 0 to add to")
            pg_execute(pg, PG_REBALANCE, (fund, year, (limits or {}).get(fund)))
            continue
        session.execute(
            update(FundPool)
            .where(FundPool.fund_id == fund, FundPool.policy_year == year, FundPool.shard == 0)
            .values(used=FundPool.used + amount)
            .execution_options(synchronize_session=False)
        )
