"""Registry tables: one row per person (scheme, name, district), one per category period,
and the append-only history of every change to them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from settlement.service.db import Base, SerialKey, UtcDateTime

SCHEME_CHECK = "scheme IN ('resident', 'employee')"
CATEGORY_CHECK = (
    "category IN ('none', 'extreme_poverty', 'subsistence_allowance', 'registered_poor',"
    " 'low_income', 'illness_impoverished')"
)
DISTRICT_CHECK = "district IS NULL OR length(district) = 6"
HISTORY_SOURCE_CHECK = "source IN ('put', 'import')"


class Person(Base):
    __tablename__ = "persons"
    __table_args__ = (
        CheckConstraint(SCHEME_CHECK, name="scheme"),
        CheckConstraint(DISTRICT_CHECK, name="district"),
        Index("ix_persons_district_person_id", "district", "person_id"),
    )

    person_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    """Normalized: a trailing x is upper-cased."""
    scheme: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(12))
    """Key id of the last change (who exactly, and what changed: person_history)."""
    name: Mapped[str | None] = mapped_column(String(100))
    """Personal data: shown to reviewer and admin roles only, never logged."""
    district: Mapped[str | None] = mapped_column(String(6))
    """The 6-digit 行政区划代码 the person is registered in; reviewers may be scoped to a prefix."""

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


class PersonHistory(Base):
    """One change to a person's entry: who, when, how, and the entry before and after.

    Append-only: rows are inserted in the transaction that makes the change,
    under the person row's lock (so ``before`` is the entry the change replaced),
    and never updated or deleted (on PostgreSQL a trigger refuses both).
    ``before`` is null when the change created the person. Snapshots are
    ``{"scheme", "name", "district", "categories": [{"category", "valid_from", "valid_to"}]}``.
    """

    __tablename__ = "person_history"
    __table_args__ = (
        CheckConstraint(HISTORY_SOURCE_CHECK, name="source"),
        Index("ix_person_history_person_id_id", "person_id", "id"),
    )

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.person_id"))
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    """Principal.actor: the staff username, else the key id; 'cli' for the command line."""
    source: Mapped[str] = mapped_column(String(16))
    """'put' (one entry written) or 'import' (a file)."""
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
