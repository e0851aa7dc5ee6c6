"""Settlement data access."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import visibility
from .models import LedgerEntry, Settlement


def find_by_claim(session: Session, hospital_id: str, claim_id: str) -> Settlement | None:
    return session.scalars(
        select(Settlement).where(
            Settlement.hospital_id == hospital_id, Settlement.claim_id == claim_id
        )
    ).one_or_none()


def paid_by_funds(session: Session, settlement_seq: int, funds: frozenset[str]) -> bool:
    """Whether one of these funds paid the settlement (a settled ledger entry of the fund)."""
    return session.scalar(
        select(LedgerEntry.id)
        .where(
            LedgerEntry.settlement_seq == settlement_seq,
            LedgerEntry.kind == "settled",
            LedgerEntry.fund.in_(sorted(funds)),
        )
        .limit(1)
    ) is not None


def get(session: Session, settlement_id: str) -> Settlement | None:
    return session.scalars(
        select(Settlement).where(Settlement.settlement_id == settlement_id)
    ).one_or_none()


def lock(session: Session, settlement_id: str) -> Settlement | None:
    """The settlement row FOR UPDATE: the first lock of a reversal."""
    return session.scalars(
        select(Settlement)
        .where(Settlement.settlement_id == settlement_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def ledger_of(session: Session, settlement_seq: int, kind: str) -> list[LedgerEntry]:
    return list(
        session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.settlement_seq == settlement_seq, LedgerEntry.kind == kind)
            .order_by(LedgerEntry.id)
        )
    )


def search(
    session: Session,
    *,
    hospital_id: str | None,
    person_id: str | None,
    status: str | None,
    claim_id: str | None = None,
    category: str | None,
    disease_group: str | None,
    pathway: str | None,
    discharged_from: dt.date | None,
    discharged_to: dt.date | None,
    after_seq: int,
    limit: int,
    paid_by: frozenset[str] | None = None,
) -> list[Settlement]:
    """Settlements in seq order after a cursor, filtered (all filters are ANDed)."""
    # status IS NOT NULL (true of every row) lets a hospital's listing use its partial index
    query = select(Settlement).where(Settlement.seq > after_seq, Settlement.status.is_not(None))
    for column, value in (
        (Settlement.hospital_id, hospital_id),
        (Settlement.person_id, person_id),
        (Settlement.claim_id, claim_id),
        (Settlement.status, status),
        (Settlement.category, category),
        (Settlement.disease_group, disease_group),
        (Settlement.pathway, pathway),
    ):
        if value is not None:
            query = query.where(column == value)
    if paid_by is not None:  # a fund-limited insurer key: the settlements its funds paid (visibility)
        query = query.where(visibility.paid_by(paid_by))
    if discharged_from is not None:
        query = query.where(Settlement.discharged >= discharged_from)
    if discharged_to is not None:
        query = query.where(Settlement.discharged <= discharged_to)
    return list(session.scalars(query.order_by(Settlement.seq).limit(limit)))
