"""Settlement data access; the portable writer's statements (SQLAlchemy Core, any database).

The writes are Core statements on the tables, executed through the caller's
Session: the transaction is the request's (db.run_transaction commits it), and
nothing is kept in the session's identity map. The optimistic PostgreSQL writer
is the PL/pgSQL ``counter_settle`` (settlements.pgcounter); there is no third.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Row, Table, insert, literal, select, update
from sqlalchemy.orm import Session

from . import visibility
from .models import LedgerEntry, Settlement, SettlementEvent

SETTLEMENTS = cast(Table, Settlement.__table__)
EVENTS = cast(Table, SettlementEvent.__table__)
LEDGER = cast(Table, LedgerEntry.__table__)

StoredSettlement = Settlement | Row[Any]
"""A settlement as read: the ORM row, or a Core row of the settlements table (same attribute names)."""


def find_by_claim(session: Session, hospital_id: str, claim_id: str) -> Settlement | None:
    return session.scalars(
        select(Settlement).where(
            Settlement.hospital_id == hospital_id, Settlement.claim_id == claim_id
        )
    ).one_or_none()


def paid_by_funds(session: Session, settlement_seq: int, funds: frozenset[str]) -> bool:
    """Whether one of these funds paid the settlement (visibility.paid_by)."""
    return bool(session.scalar(select(visibility.paid_by(funds)).where(Settlement.seq == settlement_seq)))


def get(session: Session, settlement_id: str) -> Settlement | None:
    return session.scalars(
        select(Settlement).where(Settlement.settlement_id == settlement_id)
    ).one_or_none()


def lock(session: Session, settlement_id: str) -> Row[Any] | None:
    """The settlement row FOR UPDATE: the first lock of a reversal."""
    return session.execute(
        select(SETTLEMENTS).where(SETTLEMENTS.c.settlement_id == settlement_id).with_for_update()
    ).one_or_none()


# -- the portable writer ---------------------------------------------------------


def insert_settlement(session: Session, values: dict[str, Any]) -> int:
    """Writes the settlement row; its seq. The unique (hospital_id, claim_id) constraint fires here."""
    return int(session.execute(insert(SETTLEMENTS).returning(SETTLEMENTS.c.seq), values).scalar_one())


def insert_event(
    session: Session, settlement_seq: int, kind: str, at: dt.datetime, key_id: str, reason: str | None = None
) -> int:
    """Appends a ``settled`` or ``reversed`` event; its seq (taken under the settlement's locks)."""
    values = {"settlement_seq": settlement_seq, "kind": kind, "at": at, "key_id": key_id, "reason": reason}
    return int(session.execute(insert(EVENTS).returning(EVENTS.c.seq), values).scalar_one())


def insert_ledger(session: Session, entries: list[dict[str, Any]]) -> None:
    """The settled event's ledger entries, in one executemany."""
    if entries:
        session.execute(insert(LEDGER), entries)


def insert_reversal_ledger(
    session: Session, settlement_seq: int, event_seq: int, day: dt.date, at: dt.datetime
) -> None:
    """The reversed event's entries: each settled entry of the settlement negated, in one statement."""
    c = LEDGER.c
    settled = (
        select(
            c.settlement_seq, literal(event_seq), literal("reversed"), c.hospital_id, c.layer, c.fund,
            -c.amount_fen, literal(day, LEDGER.c.business_date.type), literal(at, LEDGER.c.at.type),
        )
        .where(c.settlement_seq == settlement_seq, c.kind == "settled")
        .order_by(c.id)
    )
    names = ["settlement_seq", "event_seq", "kind", "hospital_id", "layer", "fund", "amount_fen", "business_date", "at"]
    session.execute(insert(LEDGER).from_select(names, settled))


def mark_reversed(session: Session, settlement_seq: int, at: dt.datetime) -> Row[Any]:
    """Sets the settlement's status projection to reversed (the one column that changes); the row after."""
    return session.execute(
        update(SETTLEMENTS)
        .where(SETTLEMENTS.c.seq == settlement_seq)
        .values(status="reversed", reversed_at=at)
        .returning(*SETTLEMENTS.c)
    ).one()

