"""The api_keys table: hashed keys, each with one role (and a hospital for hospital keys)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, UtcDateTime


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('hospital', 'reviewer', 'insurer', 'admin')", name="role"),
        # a hospital key is bound to exactly one hospital; no other key is
        CheckConstraint("(role = 'hospital') = (hospital_id IS NOT NULL)", name="hospital_binding"),
    )

    key_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    hospital_id: Mapped[str | None] = mapped_column(String(128))
    funds: Mapped[str | None] = mapped_column(Text)
    """Insurer keys only: comma-separated fund ids the key may see (null: every fund)."""
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
