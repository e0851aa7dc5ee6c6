"""Registry tables: one row per hospital, and an append-only record of every change to it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, SerialKey, UtcDateTime


class Hospital(Base):
    """A hospital the counter settles for. Its level (1, 2, 3) is the one the engine uses at the counter,
    whatever a claim states; a claim of a hospital not in this table is refused."""

    __tablename__ = "hospitals"
    __table_args__ = (CheckConstraint("level IN (1, 2, 3)", name="level"),)

    hospital_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[int] = mapped_column(SmallInteger)
    district: Mapped[str] = mapped_column(String(12))
    """行政区划代码 (six digits)."""
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class HospitalChange(Base):
    """One change to a hospital's entry: who, when, the entry before (null: created) and after.

    Rows are only ever inserted (hospitals.service.put_hospital), under the hospital row's lock,
    so ``before`` is the entry the previous record left."""

    __tablename__ = "hospital_history"
    __table_args__ = (Index("ix_hospital_history_hospital_id_id", "hospital_id", "id"),)

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    hospital_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    """principal.actor: the staff username, else the key id."""
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    after: Mapped[dict[str, Any]] = mapped_column(JSON())
