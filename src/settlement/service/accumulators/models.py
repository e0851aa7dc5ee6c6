"""Accumulator rows: one per (person, policy year), one per (person, policy year, charity fund).

Invariant: each column equals the sum of the contributions of the person's
settled, not reversed, settlements of that year (a reversal subtracts exactly
what its settlement added). Protected by the person-year row lock: every
read-compute-write of these rows happens under SELECT … FOR UPDATE of the
person_year_accumulators row (accumulators.repository.lock_person_year), the
charity rows included. The CHECK constraints keep every total ≥ 0.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column

from settlement.engine.totals import COLUMNS
from settlement.service.db import Base, Fen, UtcDateTime

PERSON_YEAR = Table(
    "person_year_accumulators",
    Base.metadata,
    Column("person_id", String(18), ForeignKey("persons.person_id"), primary_key=True),
    Column("policy_year", Integer, primary_key=True),
    *(Column(name, Fen, nullable=False, default=0) for name in COLUMNS),
    Column("updated_at", UtcDateTime, nullable=True),
    CheckConstraint(" AND ".join(f"{name} >= 0" for name in COLUMNS), name="non_negative"),
)
"""One row per (person, policy year): a column per total of engine.totals.TOTALS."""


class PersonYear(Base):
    """The ORM class of PERSON_YEAR; its totals are attributes named by engine.totals.COLUMNS."""

    __table__ = PERSON_YEAR

    person_id: Mapped[str]
    policy_year: Mapped[int]
    updated_at: Mapped[dt.datetime | None]


class PersonCharity(Base):
    __tablename__ = "person_year_charity"
    __table_args__ = (
        ForeignKeyConstraint(
            ["person_id", "policy_year"],
            ["person_year_accumulators.person_id", "person_year_accumulators.policy_year"],
            name="fk_person_year_charity_person_year",
        ),
        CheckConstraint("paid >= 0", name="non_negative"),
    )

    person_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    policy_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    fund_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    paid: Mapped[int] = mapped_column(Fen, default=0)
