"""Pool rows: how much of each charity fund's annual pool is used, per policy year.

A fund-year's use is the sum of its rows (shards). On PostgreSQL a limited
fund-year has POOL_SHARDS rows (funds.repository), each with an
``allowance``; the allowances add up to the pool. A draw that fits in one
shard's allowance (``used + d <= allowance``, enforced here by CHECK) proves the
whole pool is not overdrawn without touching the other shards, so draws on one
fund-year no longer queue on one row. Whatever needs the exact total — a pool
found spent, the claim that takes the last money, the locked way — locks all of
its shards (in shard order) and may spread the allowances anew, always so that
they add up to the pool. A reversal gives back to shard 0 (its use may go below
0 there; the sum is what counts). The embedded SQLite default keeps one row per
fund-year (shard 0, no allowance) and locks the database instead.

Invariant: the sum of used ≤ the pool of the version in force, and equals the
sum of the charity the fund paid on settled, not reversed, settlements of that
year (loadtests.checks and tests/service/test_concurrency.py check both).
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, Fen


class FundPool(Base):
    __tablename__ = "fund_pools"
    __table_args__ = (CheckConstraint("allowance IS NULL OR used <= allowance", name="within_allowance"),)

    fund_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=0)
    used: Mapped[int] = mapped_column(Fen, default=0)
    allowance: Mapped[int | None] = mapped_column(Fen, nullable=True)
    pool: Mapped[int | None] = mapped_column(Fen, nullable=True)
    """The pool size the allowances were spread for: a draw checks it is its claim's pool."""
