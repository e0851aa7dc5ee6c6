"""Settlements, their events and their ledger.

Records are immutable: a settlement's money, claim and result are written
once. A reversal adds a ``reversed`` event and negating ledger entries; the
only column that changes is the settlement's ``status`` (and ``reversed_at``),
a projection of its events kept for filtering.

Invariants and what protects them:

- one settlement per (hospital_id, claim_id): the unique constraint
  ``uq_settlements_hospital_id_claim_id`` (the final guard), checked first
  under the person-year lock;
- a settlement's amounts add up (total = basic + critical_illness +
  medical_assistance + charity + emergency_relief + backstop + patient_pays +
  hospital_bears, every term ≥ 0): CHECK ``amounts_add_up`` and ``non_negative``;
- a settlement is of a registered person or of an unidentified patient under
  the hospital's temporary id, never both nor neither: CHECK ``one_patient``
  (migration 0009);
- its ledger entries sum to its total, and a reversal's to minus it: written
  together from the one engine result in the one transaction
  (settlements.service.settle, or counter_settle);
- reversed at most once: the settlement row's FOR UPDATE lock and the unique
  constraint on (settlement_seq, kind) of ``settlement_events``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from settlement.service.db import Base, Fen, SerialKey, UtcDateTime

# JSON, not JSONB: stored as written, so a replay returns the first result byte for byte (key order too)
Json = JSON()

AMOUNTS = (
    "total",
    "fully_self_paid",
    "over_limit",
    "pre_self_paid",
    "in_scope",
    "deductible",
    "basic",
    "critical_illness",
    "medical_assistance",
    "charity",
    "backstop",
    "patient_pays",
    "hospital_bears",
    # last: the counter's counter_settle (migration 0002) reads the first 13 by position and leaves this
    # one at its default 0; it never writes an emergency claim (pgcounter routes them the locked way)
    "emergency_relief",
)


LISTED = text("status IS NOT NULL")
"""ix_settlements_hospital_id_seq's predicate: true of every row (status is NOT NULL)."""


class Settlement(Base):
    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("hospital_id", "claim_id"),
        UniqueConstraint("settlement_id"),
        CheckConstraint("status IN ('settled', 'reversed')", name="status"),
        CheckConstraint(
            "total_fen = basic_fen + critical_illness_fen + medical_assistance_fen + charity_fen"
            " + emergency_relief_fen + backstop_fen + patient_pays_fen + hospital_bears_fen",
            name="amounts_add_up",
        ),
        CheckConstraint("(person_id IS NULL) <> (temporary_id IS NULL)", name="one_patient"),
        CheckConstraint(
            " AND ".join(f"{name}_fen >= 0" for name in AMOUNTS),
            name="non_negative",
        ),
        Index("ix_settlements_person_id_policy_year", "person_id", "policy_year"),
        # partial on a predicate only the listing states (query.conditions): the claim lookups
        # (hospital_id, claim_id) can then use the unique index only, whatever the statistics (0003)
        Index(
            "ix_settlements_hospital_id_seq",
            "hospital_id",
            "seq",
            postgresql_where=LISTED,
            sqlite_where=LISTED,
        ),
        Index("ix_settlements_discharged", "discharged"),
    )

    seq: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    settlement_id: Mapped[str] = mapped_column(String(36))
    hospital_id: Mapped[str] = mapped_column(String(128))
    claim_id: Mapped[str] = mapped_column(String(128))
    claim_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the validated claim in canonical form (see settlements.hashing)."""
    request_body: Mapped[str] = mapped_column(Text)
    """The request body exactly as received."""
    key_id: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(16))
    settled_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    reversed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    person_id: Mapped[str | None] = mapped_column(String(18))
    """None for an unidentified patient (temporary_id)."""
    scheme: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(32))
    """The registry's scheme and category on the admission date, as used; None for an unidentified patient."""
    temporary_id: Mapped[str | None] = mapped_column(String(64))
    """The hospital's temporary id of an unidentified patient (身份不明, SPEC §3)."""
    emergency: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """The hospital's declarations (SPEC §9): visit.emergency, patient.unable_to_pay."""
    unable_to_pay: Mapped[bool] = mapped_column(Boolean, server_default=false())
    visit_type: Mapped[str] = mapped_column(String(32))
    admitted: Mapped[dt.date] = mapped_column(Date)
    discharged: Mapped[dt.date] = mapped_column(Date)
    policy_year: Mapped[int] = mapped_column(Integer)
    schedule_version: Mapped[str] = mapped_column(String(128))
    pathway: Mapped[str] = mapped_column(String(32))
    disease_group: Mapped[str | None] = mapped_column(String(128))

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
    emergency_relief_fen: Mapped[int] = mapped_column(Fen, server_default=text("0"))

    result: Mapped[dict[str, Any]] = mapped_column(Json)
    """The SPEC §6 result, as first returned."""
    trace: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    accumulators_after: Mapped[dict[str, Any]] = mapped_column(Json)
    contribution: Mapped[dict[str, Any]] = mapped_column(Json)
    """What this settlement added to the person-year totals and the pools, in fen;
    a reversal subtracts it."""


class SettlementEvent(Base):
    """Append-only history: one ``settled`` and at most one ``reversed`` event per settlement.

    ``seq`` is taken while the settlement's locks are held, so for any two
    events that touch the same person-year or pool, seq order is commit order.
    """

    __tablename__ = "settlement_events"
    __table_args__ = (
        UniqueConstraint("settlement_seq", "kind"),
        CheckConstraint("kind IN ('settled', 'reversed')", name="kind"),
    )

    seq: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    settlement_seq: Mapped[int] = mapped_column(ForeignKey("settlements.seq"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    key_id: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)


class LedgerEntry(Base):
    """Money moved by one event for one payer: basic, critical_illness, medical_assistance,
    each charity fund (layer ``charity``, fund = its id), emergency_relief, backstop, patient, hospital."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "layer IN ('basic', 'critical_illness', 'medical_assistance', 'charity', 'emergency_relief',"
            " 'backstop', 'patient', 'hospital')",
            name="layer",
        ),
        CheckConstraint(
            "(kind = 'settled' AND amount_fen > 0) OR (kind = 'reversed' AND amount_fen < 0)",
            name="sign",
        ),
        Index(
            "ix_ledger_entries_business_date_hospital_id_fund",
            "business_date",
            "hospital_id",
            "fund",
        ),
        Index("ix_ledger_entries_settlement_seq", "settlement_seq"),
    )

    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    settlement_seq: Mapped[int] = mapped_column(ForeignKey("settlements.seq"))
    event_seq: Mapped[int] = mapped_column(ForeignKey("settlement_events.seq"))
    kind: Mapped[str] = mapped_column(String(16))
    hospital_id: Mapped[str] = mapped_column(String(128))
    layer: Mapped[str] = mapped_column(String(32))
    fund: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(Fen)
    business_date: Mapped[dt.date] = mapped_column(Date)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
