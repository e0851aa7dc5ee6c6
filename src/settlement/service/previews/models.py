"""One row per answered preview: who (key), which person, which hospital and claim, when."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, SerialKey, UtcDateTime


class PreviewRecord(Base):
    """Written in batches by previews.recorder.PreviewLog, never updated."""

    __tablename__ = "preview_records"
    __table_args__ = (
        Index("ix_preview_records_person_id_id", "person_id", "id"),
        Index("ix_preview_records_hospital_id_id", "hospital_id", "id"),
    )

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    """principal.actor of the preview's key."""
    hospital_id: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[str] = mapped_column(String(18))
    claim_id: Mapped[str] = mapped_column(String(128))
