"""Registry tables: one row per person (scheme), one per category period."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from settlement.service.db import Base, SerialKey, UtcDateTime

SCHEME_CHECK = "scheme IN ('resident', 'employee')"
CATEGORY_CHECK = (
    "category IN ('none', 'extreme_poverty', 'subsistence_allowance', 'registered_poor',"
    " 'low_income', 'illness_impoverished')"
)


class Person(Base):
    __tablename__ = "persons"
    __table_args__ = (CheckConstraint(SCHEME_CHECK, name="scheme"),)

    person_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    """Normalized: a trailing x is upper-cased."""
    scheme: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(12))
    """Key id of the last change."""

    periods: Mapped[list[PersonCategory]] = relationship(
        back_populates="person", order_by="PersonCategory.valid_from", cascade="all, delete-orphan"
    )


class PersonCategory(Base):
    """A category valid from valid_from to valid_to, both inclusive (null: open-ended).

    Periods of one person never overlap: checked when they are written, under
    the person row's lock (see persons.repository.lock_person).
    """

    __tablename__ = "person_categories"
    __table_args__ = (
        CheckConstraint(CATEGORY_CHECK, name="category"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="period_order"),
        Index("ix_person_categories_person_id_valid_from", "person_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.person_id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)

    person: Mapped[Person] = relationship(back_populates="periods")
