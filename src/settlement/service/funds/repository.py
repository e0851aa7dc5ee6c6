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
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from settlement.service.db import insert_ignore, pg_connection, pg_execute

from .models import FundPool

PG_READ = "SELECT fund_id, used FROM fund_pools WHERE policy_year = %s AND fund_id = ANY(%s)"
PG_ENSURE = (
    "INSERT INTO fund_pools (fund_id, policy_year, used) SELECT f, %s, 0 FROM unnest(%s::text[]) AS f"
    " ON CONFLICT (fund_id, policy_year) DO NOTHING"
)
PG_LOCK = (
    "SELECT fund_id, used FROM fund_pools WHERE policy_year = %s AND fund_id = ANY(%s)"
    " ORDER BY fund_id FOR UPDATE"
)
PG_SHARE = (
    "SELECT fund_id, used FROM fund_pools WHERE policy_year = %s AND fund_id = ANY(%s)"
    " ORDER BY fund_id FOR SHARE"
)
# A draw that fits: adds to the pool only if the pool still has room for it, and takes the
# settlement's event number while the row is locked (seq order = commit order on this pool).
_UPSERT = (
    "INSERT INTO fund_pools AS p (fund_id, policy_year, used) VALUES (%(fund)s, %(year)s, %(amount)s)"
    " ON CONFLICT (fund_id, policy_year) DO UPDATE SET used = p.used + EXCLUDED.used"
)
_ROOM = " WHERE p.used + EXCLUDED.used <= %(limit)s"
_SEQ = " RETURNING nextval(pg_get_serial_sequence('settlement_events', 'seq')) AS seq"
PG_DRAW = _UPSERT + _ROOM + _SEQ
PG_DRAW_UNLIMITED = _UPSERT + _SEQ
# ... and, for the settlement's last draw, its settled event and ledger entries in the same
# statement: the row lock is then held for one statement and the commit, nothing in between
_THEN_LEDGER = (
    ", e AS (INSERT INTO settlement_events (seq, settlement_seq, kind, at, key_id)"
    " SELECT d.seq, %(seq)s, 'settled', %(at)s, %(key_id)s FROM d RETURNING seq)"
    " INSERT INTO ledger_entries"
    " (settlement_seq, event_seq, kind, hospital_id, layer, fund, amount_fen, business_date, at)"
    " SELECT %(seq)s, e.seq, 'settled', %(hospital_id)s, v.layer, v.fund, v.amount, %(day)s, %(at)s"
    " FROM e, unnest(%(layers)s::text[], %(funds)s::text[], %(amounts)s::bigint[]) AS v(layer, fund, amount)"
    " RETURNING event_seq"
)
PG_DRAW_LEDGER = "WITH d AS (" + PG_DRAW + ")" + _THEN_LEDGER
PG_DRAW_LEDGER_UNLIMITED = "WITH d AS (" + PG_DRAW_UNLIMITED + ")" + _THEN_LEDGER


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
    pg = pg_connection(session)
    if pg is not None:
        pg_execute(pg, PG_ENSURE, (year, funds))
        return {fund: int(value) for fund, value in pg_execute(pg, PG_LOCK, (year, funds))}
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
    """Adds to the use of pools locked by lock_pools in this transaction (the portable way)."""
    for fund, amount in sorted(deltas.items()):
        if amount:
            session.execute(
                update(FundPool)
                .where(FundPool.fund_id == fund, FundPool.policy_year == year)
                .values(used=FundPool.used + amount)
                .execution_options(synchronize_session=False)
            )


def share_lock_pools(session: Session, year: int, fund_ids: Iterable[str]) -> dict[str, int]:
    """PostgreSQL: the pool rows FOR SHARE, in fund_id order, and their use (0 when absent).

    For a settlement that finds a pool spent: while it holds the share lock no
    one can draw on or give back to the pool, so "the pool pays 0" stays true
    until it commits, and any number of such settlements hold it at once.
    """
    pg = pg_connection(session)
    funds = sorted(set(fund_ids))
    used = dict.fromkeys(funds, 0)
    if pg is not None and funds:
        used.update({fund: int(value) for fund, value in pg_execute(pg, PG_SHARE, (year, funds))})
    return used


def draw_if_room(
    session: Session,
    year: int,
    fund: str,
    amount: int,
    limit: int | None,
    ledger: dict[str, Any] | None = None,
) -> int | None:
    """PostgreSQL: adds amount to the pool if used + amount ≤ limit; the next event seq, or None.

    The row lock is taken here, by the last statements of the settlement, and
    held only until its commit. With ``ledger`` (the values of
    settlements.pgsettle.write_ledger) the same statement also writes the
    settled event, numbered under the lock, and its ledger entries.
    """
    pg = pg_connection(session)
    assert pg is not None
    params: dict[str, Any] = {"fund": fund, "year": year, "amount": amount, "limit": limit}
    if ledger is None:
        sql = PG_DRAW if limit is not None else PG_DRAW_UNLIMITED
    else:
        sql = PG_DRAW_LEDGER if limit is not None else PG_DRAW_LEDGER_UNLIMITED
        params.update(ledger)
    found = pg_execute(pg, sql, params).fetchone()
    return None if found is None else int(found[0])
