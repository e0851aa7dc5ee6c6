"""Reconciliation runs and their items: written once, never changed.

A run stores the SHA-256 of the file as received, who ran it and when, the
summary, and one item per line of the report (every key of either side).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, Fen, UtcDateTime


class ReconciliationRun(Base):
    __tablename__ = "reconciliation_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    fund: Mapped[str] = mapped_column(String(64))
    period_from: Mapped[dt.date] = mapped_column(Date)
    period_to: Mapped[dt.date] = mapped_column(Date)
    input_name: Mapped[str] = mapped_column(String(255))
    input_sha256: Mapped[str] = mapped_column(String(64))
    ran_by: Mapped[str] = mapped_column(String(128))
    ran_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON())


class ReconciliationItem(Base):
    __tablename__ = "reconciliation_items"

    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    hospital_id: Mapped[str | None] = mapped_column(String(128))
    claim_id: Mapped[str] = mapped_column(String(128))
    settlement_id: Mapped[str | None] = mapped_column(String(64))
    ours_fen: Mapped[int | None] = mapped_column(Fen)
    theirs_fen: Mapped[int | None] = mapped_column(Fen)
    line: Mapped[int | None] = mapped_column(Integer)
    """The line of their file (header = line 1), None for a key only ours has."""
