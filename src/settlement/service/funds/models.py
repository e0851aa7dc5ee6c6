"""Pool rows: how much of each charity fund's annual pool is used, per policy year.

Invariant: used ≤ the pool of the version in force, and used equals the sum
of the charity the fund paid on settled, not reversed, settlements of that
year. Protected by SELECT … FOR UPDATE of the pool rows a settlement draws on,
taken in fund_id order after the person-year lock and held until commit
(funds.repository.lock_pools); CHECK used ≥ 0.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, Fen


class FundPool(Base):
    __tablename__ = "fund_pools"
    __table_args__ = (CheckConstraint("used >= 0", name="non_negative"),)

    fund_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    used: Mapped[int] = mapped_column(Fen, default=0)
