"""Staff accounts, their web sessions and their sign-in attempts (migrations 0007, 0010).

Invariants and what protects them:

- one account per username: the primary key;
- at most 5 failed sign-ins count in 15 minutes before the account locks: a
  sign-in reads the account row ``FOR UPDATE`` (accounts.service.sign_in), so
  one user's attempts are checked and recorded one at a time;
- a session is found only by the SHA-256 of its cookie token (the token itself
  is never stored); it ends at ``expires_at`` or when ``ended_at`` is set (sign-out).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, SerialKey, UtcDateTime

STAFF_ROLES = ("reviewer", "admin", "insurer")
LANGUAGES = ("zh_CN", "en")


class StaffUser(Base):
    __tablename__ = "staff_users"
    __table_args__ = (
        CheckConstraint("role IN ('reviewer', 'admin', 'insurer')", name="role"),
        CheckConstraint("language IS NULL OR language IN ('zh_CN', 'en')", name="language"),
    )

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    district: Mapped[str | None] = mapped_column(String(6))
    """A 行政区划代码 prefix (2, 4 or 6 digits) scoping a reviewer; null: the whole region."""
    funds: Mapped[str | None] = mapped_column(Text)
    """Insurers only: comma-separated fund ids the account may see, as an insurer key's (null: every fund)."""
    password_hash: Mapped[str] = mapped_column(String(200))
    """argon2id, as argon2-cffi encodes it (parameters and salt included)."""
    language: Mapped[str | None] = mapped_column(String(8))
    """The user's chosen page language; null: the browser's Accept-Language."""
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class WebSession(Base):
    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_username", "username"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 (hex) of the cookie's token."""
    username: Mapped[str] = mapped_column(ForeignKey("staff_users.username", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    """Every state-changing form of this session carries it."""
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class LoginAttempt(Base):
    """Every sign-in attempt on an existing account (the lock-out counts the failed ones)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(ForeignKey("staff_users.username", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    client: Mapped[str | None] = mapped_column(String(64))
    """The client's address, for the record."""
