"""Period closes (月结): a month's statement of one fund, frozen.

A close is a new immutable row; nothing updates or deletes it, and there is
no reopening. What a closed month holds is fixed by ``through_entry``: the
ledger entries booked in the month whose id is at most that watermark (taken
while no ledger write is in flight: statements.service.close_period), plus
the late entries of earlier closed months that this close picked up.

Invariants and what protects them:

- one close per fund and month: UNIQUE (fund, period);
- months close in order, none skipped: FK (fund, previous) → (fund, period)
  (the month before must be closed and committed) and the partial UNIQUE
  index ``uq_period_closes_first`` (one first close per fund).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, Fen, SerialKey, UtcDateTime

FIRST = text("previous IS NULL")


class PeriodClose(Base):
    __tablename__ = "period_closes"
    __table_args__ = (
        UniqueConstraint("fund", "period"),
        ForeignKeyConstraint(
            ["fund", "previous"],
            ["period_closes.fund", "period_closes.period"],
            name="fk_period_closes_previous",
        ),
        Index("uq_period_closes_first", "fund", unique=True, postgresql_where=FIRST, sqlite_where=FIRST),
    )

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    fund: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))
    """YYYY-MM."""
    previous: Mapped[str | None] = mapped_column(String(7))
    """The month closed before this one (the month before), None for the fund's first close."""
    through_entry: Mapped[int] = mapped_column(Fen)
    """Ledger entries with an id above this were not committed when the month closed."""
    settlements: Mapped[int] = mapped_column(Integer)
    reversals: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Fen)
    lines: Mapped[int] = mapped_column(Integer)
    lines_sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON())
    """The month's statement rows (by hospital), as closed."""
    closed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    closed_by: Mapped[str] = mapped_column(String(128))
