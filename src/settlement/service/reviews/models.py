"""Review records, the review status projection and the materialized flags.

Invariants and what protects them:

- review records are append-only (``settlement_reviews``): rows are only inserted;
  ``query``/``recover`` carry a note (CHECK ``note_required``);
- a settlement's review status is the decision of its latest approve/query/recover
  record (``settlement_review_status``, one row per reviewed settlement, none while
  pending): every decision upserts the row with ``WHERE review_id < excluded.review_id``
  under the row lock the upsert takes on the primary key, so concurrent decisions
  end with the highest record id's decision, the last of ``GET …/reviews``;
- flags are derived data, rewritten by the refresher only (reviews.flags), which
  runs one at a time: it holds ``flag_refresh_state``'s row lock while it works.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, Fen, SerialKey, UtcDateTime
from settlement.service.settlements.models import AMOUNTS, LISTED, Settlement

DECISIONS = ("approve", "query", "recover", "comment")
STATUS_OF = {"approve": "approved", "query": "queried", "recover": "recovery"}
"""The review status a decision sets; a comment sets none."""
REVIEW_STATUSES = ("pending", "approved", "queried", "recovery")


class Review(Base):
    """One reviewer's decision or comment on one settlement: who, when, what, why."""

    __tablename__ = "settlement_reviews"
    __table_args__ = (
        CheckConstraint("decision IN ('approve', 'query', 'recover', 'comment')", name="decision"),
        CheckConstraint(
            "decision NOT IN ('query', 'recover') OR (note IS NOT NULL AND note <> '')", name="note_required"
        ),
        Index("ix_settlement_reviews_settlement_seq_id", "settlement_seq", "id"),
    )

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    settlement_seq: Mapped[int] = mapped_column(ForeignKey("settlements.seq"))
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    """principal.actor: the staff username, else the API key id."""
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    batch_id: Mapped[str | None] = mapped_column(String(36))
    """The bulk approval that wrote this record (one id per bulk call), else null."""


REVIEWED_CARRIED = ("settled_at", "admitted", "discharged", *(f"{name}_fen" for name in AMOUNTS))
"""The settlement's columns a review status row carries (copied when the row is first written; a
settlement never changes them): what the queue sums and sorts by, so that a filter of review status
(and settled dates) reads this table's index alone (settlements.query, migration 0014)."""


class ReviewStatus(Base):
    """A settlement's current review status: a projection of its records (no row: pending), with
    the settlement's dates and amounts (REVIEWED_CARRIED) beside it."""

    __tablename__ = "settlement_review_status"
    __table_args__ = (
        CheckConstraint("status IN ('approved', 'queried', 'recovery')", name="status"),
        Index(
            "ix_settlement_review_status_status_settlement_seq", "status", "settlement_seq",
            postgresql_include=list(REVIEWED_CARRIED),
        ),
    )

    settlement_seq: Mapped[int] = mapped_column(ForeignKey("settlements.seq"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    review_id: Mapped[int] = mapped_column(ForeignKey("settlement_reviews.id"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    settled_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    admitted: Mapped[dt.date] = mapped_column(Date)
    discharged: Mapped[dt.date] = mapped_column(Date)
    total_fen: Mapped[int] = mapped_column(Fen)
    fully_self_paid_fen: Mapped[int] = mapped_column(Fen)
    over_limit_fen: Mapped[int] = mapped_column(Fen)
    pre_self_paid_fen: Mapped[int] = mapped_column(Fen)
    in_scope_fen: Mapped[int] = mapped_column(Fen)
    deductible_fen: Mapped[int] = mapped_column(Fen)
    basic_fen: Mapped[int] = mapped_column(Fen)
    critical_illness_fen: Mapped[int] = mapped_column(Fen)
    medical_assistance_fen: Mapped[int] = mapped_column(Fen)
    charity_fen: Mapped[int] = mapped_column(Fen)
    backstop_fen: Mapped[int] = mapped_column(Fen)
    patient_pays_fen: Mapped[int] = mapped_column(Fen)
    hospital_bears_fen: Mapped[int] = mapped_column(Fen)
    emergency_relief_fen: Mapped[int] = mapped_column(Fen)


class SettlementFlag(Base):
    """A rule that fired on a settlement: the figures that made it fire and the threshold in force."""

    __tablename__ = "settlement_flags"
    __table_args__ = (Index("ix_settlement_flags_rule_settlement_seq", "rule", "settlement_seq"),)

    settlement_seq: Mapped[int] = mapped_column(ForeignKey("settlements.seq"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(32), primary_key=True)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON())
    threshold: Mapped[dict[str, Any]] = mapped_column(JSON())
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class FlagCheck(Base):
    """That a settlement's claim rules were evaluated, and under which rules (their digest)."""

    __tablename__ = "settlement_flag_checks"

    settlement_seq: Mapped[int] = mapped_column(ForeignKey("settlements.seq"), primary_key=True)
    rules_digest: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class FlagRefreshState(Base):
    """The refresher's watermarks (one row, name 'flags'); its row lock makes one refresher run at a time.

    A *mark* is (the highest seq seen, when): once the mark is older than the margin, every
    transaction that could still write a seq at or below it has ended, so the watermark may
    move up to it (reviews.flags).
    """

    __tablename__ = "flag_refresh_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    rules_digest: Mapped[str] = mapped_column(String(16))
    settlement_wm: Mapped[int] = mapped_column(BigInteger)
    settlement_mark: Mapped[int] = mapped_column(BigInteger)
    event_wm: Mapped[int] = mapped_column(BigInteger)
    event_mark: Mapped[int] = mapped_column(BigInteger)
    mark_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    persons_since: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    """Registry changes at or after this time are (re)checked on the next run."""
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class SeqMark(Base):
    """At some moment between ``at_lo`` and ``at_hi`` the highest committed settlement seq was ``seq``.

    Written by the flags refresher (at most one a minute). With the margin (the longest a settle
    transaction lives, settled_at being taken at its start), they turn a settled-date range into a
    seq range that contains it (settlements.query.seq_bounds): a settlement settled at or after X
    took its seq after any mark with at_hi <= X - margin was read, so its seq is above that mark's;
    one settled before Y was committed before any mark with at_lo >= Y + margin was read, so its seq
    is at most that mark's. The queue then reads a month as a range of the primary key, whatever
    else it filters by, with nothing added to the counter's insert.
    """

    __tablename__ = "settlement_seq_marks"
    __table_args__ = (Index("ix_settlement_seq_marks_at_lo", "at_lo"),)

    at_hi: Mapped[dt.datetime] = mapped_column(UtcDateTime, primary_key=True)
    at_lo: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    seq: Mapped[int] = mapped_column(BigInteger)


# The queue's indexes on settlements (kept here, with the queries that need them; migration 0006):
# a BRIN on settled_at (rows arrive in settled order; a few pages of index, nothing on the counter's
# insert path worth measuring) for the settled date range and the totals over it.
Index(
    "ix_settlements_settled_at_brin",
    Settlement.settled_at,
    postgresql_using="brin",
)
# The covering index of the queue's count and totals (migration 0010): keyed on seq (settled-date
# ranges become seq ranges, keyset order), carrying every column the queue filters, sorts or sums,
# so they read index-only. Partial on the listing's predicate (0003): only the queue can use it.
QUEUE_CARRIED = (
    "settled_at", "hospital_id", "person_id", "status", "scheme", "category", "visit_type", "pathway",
    "admitted", "discharged", *(f"{name}_fen" for name in AMOUNTS),
)
Index(
    "ix_settlements_queue",
    Settlement.seq,
    postgresql_include=list(QUEUE_CARRIED),
    postgresql_where=LISTED,
    sqlite_where=LISTED,
)

__all__ = [
    "DECISIONS",
    "REVIEWED_CARRIED",
    "REVIEW_STATUSES",
    "STATUS_OF",
    "FlagCheck",
    "FlagRefreshState",
    "Review",
    "ReviewStatus",
    "SeqMark",
    "SettlementFlag",
]
