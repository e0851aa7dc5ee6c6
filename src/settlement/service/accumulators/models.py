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
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, Fen, UtcDateTime


class PersonYear(Base):
    __tablename__ = "person_year_accumulators"
    __table_args__ = (
        CheckConstraint(
            "basic_paid_inpatient >= 0 AND basic_paid_outpatient >= 0"
            " AND basic_paid_chronic_outpatient >= 0 AND critical_base >= 0 AND critical_paid >= 0"
            " AND assistance_base >= 0 AND assistance_paid >= 0",
            name="non_negative",
        ),
    )

    person_id: Mapped[str] = mapped_column(ForeignKey("persons.person_id"), primary_key=True)
    policy_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    basic_paid_inpatient: Mapped[int] = mapped_column(Fen, default=0)
    basic_paid_outpatient: Mapped[int] = mapped_column(Fen, default=0)
    basic_paid_chronic_outpatient: Mapped[int] = mapped_column(Fen, default=0)
    critical_base: Mapped[int] = mapped_column(Fen, default=0)
    critical_paid: Mapped[int] = mapped_column(Fen, default=0)
    assistance_base: Mapped[int] = mapped_column(Fen, default=0)
    assistance_paid: Mapped[int] = mapped_column(Fen, default=0)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


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
