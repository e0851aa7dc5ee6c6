"""Block totals: the count and the sum of every amount per block of ``BLOCK`` settlement seqs, kept
by the refresher, so that the queue's totals over many settlements add up blocks, not rows.

Why it is exact. A settlement's amounts and settled_at never change after its insert (a reversal
changes status and reversed_at only) and no settlement is deleted, so the totals of a set of seqs
are final once no further seq of it can commit. ``refresh`` only sums blocks whose every seq is at
or below the *closed* seq: the highest seq of a seq mark (reviews.models.SeqMark, the highest
committed seq at some moment before its ``at_hi``) whose ``at_hi`` is at least the margin
(``flags_refresh_margin_seconds``, the longest a settle transaction lives: statement and lock
timeouts) in the past. A seq at or below that mark not committed when the mark was read belonged
to a transaction then alive, which has committed or rolled back since; so every row a block will
ever hold is in it when it is summed (the flags refresher's watermark, the same argument). Blocks
are written in order from block 0 with INSERT … ON CONFLICT DO NOTHING (the primary key on
``block``): two refreshers at once sum the same closed rows and write the same block once, and
the stored blocks are always a run 0..R with no hole (a block with no settlement is stored with
count 0).

How it is read (``totals``): only for a filter of settled dates and nothing else, by a caller
that sees every settlement and every amount (settlements.query.summarize decides). The blocks
wholly inside the filter's seq range (query.seq_bounds) whose first and last settled_at lie in
the date range are added, if they form one run; the seqs before and after the run are summed
from the rows with the filter's full conditions, as without blocks. Any other filter (status,
review status, hospital, district, …) is summed from the rows only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ColumnElement, Integer, Table, and_, func, or_, select
from sqlalchemy.orm import Session

from settlement.service.db import Base, Database, Fen, UtcDateTime, insert_ignore

from .models import AMOUNTS, Settlement

BLOCK = 1024
"""Seqs per block: 1,000,000 settlements are ~980 blocks; a filter's partial blocks at each end
cost at most 2 × 1,023 rows summed from the index (docs/PERFORMANCE.md §9.1c)."""

BATCH = 256
"""Blocks summed per transaction of a refresh (~260,000 rows)."""

seq_blocks = Table(
    "settlement_seq_blocks",
    Base.metadata,
    Column("block", BigInteger, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("first_at", UtcDateTime, nullable=True),
    Column("last_at", UtcDateTime, nullable=True),
    *(Column(f"{name}_fen", Fen, nullable=False) for name in AMOUNTS),
)
"""One row per block ``block`` of seqs ``block * BLOCK`` … ``block * BLOCK + BLOCK - 1``: how many
settlements it holds, their earliest and latest settled_at (null when none) and the sum of each
amount (fen)."""


def closed_seq(session: Session, now: dt.datetime, margin: dt.timedelta) -> int:
    """The highest seq at or below which every settlement has committed or never will (0: none known):
    the latest seq mark read at least ``margin`` before ``now``."""
    from settlement.service.reviews.models import SeqMark

    seq = session.scalar(select(func.max(SeqMark.seq)).where(SeqMark.at_hi <= now - margin))
    return int(seq or 0)


def refresh(
    db: Database,
    *,
    margin: dt.timedelta,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    """Sums the closed blocks not stored yet (module docstring), ``BATCH`` a transaction; the number
    of blocks written."""
    written = 0
    while True:
        with db.write() as session:
            last = (closed_seq(session, clock(), margin) + 1) // BLOCK - 1  # the last block wholly closed
            stored = session.scalar(select(func.max(seq_blocks.c.block)))
            first = 0 if stored is None else int(stored) + 1
            if first > last:
                return written
            last = min(last, first + BATCH - 1)
            s = Settlement
            block = (s.seq // BLOCK).label("block")
            rows = {
                int(row[0]): row
                for row in session.execute(
                    select(block, func.count(), func.min(s.settled_at), func.max(s.settled_at),
                           *(func.sum(getattr(s, f"{name}_fen")) for name in AMOUNTS))
                    .where(s.seq >= first * BLOCK, s.seq < (last + 1) * BLOCK)
                    .group_by(block)
                )
            }
            values = []
            for b in range(first, last + 1):
                row = rows.get(b)
                values.append({
                    "block": b,
                    "count": int(row[1]) if row else 0,
                    "first_at": row[2] if row else None,
                    "last_at": row[3] if row else None,
                    **{f"{name}_fen": int(row[4 + i]) if row else 0 for i, name in enumerate(AMOUNTS)},
                })
            insert_ignore(session, seq_blocks, values, ["block"])
            session.commit()
            written += len(values)


@dataclass(frozen=True)
class Run:
    """Blocks ``first`` … ``last`` added up: ``count`` settlements, ``totals`` {amount name: fen}."""

    first: int
    last: int
    count: int
    totals: dict[str, int]

    @property
    def low(self) -> int:
        """Every seq of the run is above this."""
        return self.first * BLOCK - 1

    @property
    def high(self) -> int:
        """Every seq of the run is at or below this."""
        return (self.last + 1) * BLOCK - 1


def totals(
    session: Session,
    bounds: tuple[int | None, int | None],
    start: dt.datetime | None,
    end: dt.datetime | None,
    names: tuple[str, ...],
) -> Run | None:
    """The longest stored run of blocks wholly inside the seq range ``bounds`` (low < seq <= high)
    whose every settlement was settled in [start, end) (None: unbounded), added up; None when the
    qualifying blocks are not one run (then the rows are summed instead)."""
    low, high = bounds
    b = seq_blocks.c
    where: list[ColumnElement[bool]] = []
    if low is not None:
        where.append(b.block >= (low + BLOCK) // BLOCK)  # its first seq, block * BLOCK, is above low
    if high is not None:
        where.append(b.block <= (high + 1) // BLOCK - 1)  # its last seq is at most high
    dated: list[ColumnElement[bool]] = []
    if start is not None:
        dated.append(b.first_at >= start)
    if end is not None:
        dated.append(b.last_at < end)
    if dated:
        where.append(or_(b.count == 0, and_(*dated)))
    row = session.execute(
        select(func.min(b.block), func.max(b.block), func.count(), func.coalesce(func.sum(b.count), 0),
               *(func.coalesce(func.sum(b[f"{name}_fen"]), 0) for name in names))
        .where(*where)
    ).one()
    if not row[2]:
        return None
    first, last = int(row[0]), int(row[1])
    if int(row[2]) != last - first + 1:  # a block between them holds a settlement outside the dates
        return None
    return Run(first, last, int(row[3]), {name: int(row[4 + i]) for i, name in enumerate(names)})


__all__ = ["BLOCK", "Run", "closed_seq", "refresh", "seq_blocks", "totals"]
