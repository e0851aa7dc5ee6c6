"""The review workflow: decisions on settlements, their history, bulk approval, the review panel.

Services flush; the caller commits (routes through db.run_transaction). Records are
append-only; a decision also moves the settlement's review status (the projection
``settlement_review_status``): an upsert under that row's lock that only a higher
record id may overwrite, so concurrent decisions end with the last record's status
(see reviews.models). Nothing here locks the settlement row: a review never waits
for, nor delays, a reversal at the counter.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Table, literal, select
from sqlalchemy.orm import Session

from settlement.money import format_fen
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal, check_role
from settlement.service.context import ServiceContext
from settlement.service.db import upsert
from settlement.service.errors import ServiceError, not_found
from settlement.service.persons.models import Person
from settlement.service.settlements import repository
from settlement.service.settlements.models import Settlement
from settlement.service.settlements.query import SettlementFilter, matching_seqs, review_facts
from settlement.service.settlements.service import iso_utc, visible

from .models import DECISIONS, REVIEWED_CARRIED, STATUS_OF, Review, ReviewStatus

REVIEWERS = (Role.REVIEWER, Role.ADMIN)
NOTE_MAX = 2000
BULK_MAX = 100_000
"""The most settlements one bulk approval may write (one record each, in one transaction)."""


def district_of(session: Session, person_id: str | None) -> str | None:
    """The person's registry district (行政区划代码), None when unknown."""
    if person_id is None:
        return None
    return session.scalar(select(Person.district).where(Person.person_id == person_id))


def check_district(session: Session, principal: Principal, person_id: str | None, what: str) -> None:
    """404 (as for a missing one) when a district-scoped caller may not see this person's settlement."""
    if principal.district is not None and not principal.sees_district(district_of(session, person_id)):
        raise not_found(f"no settlement {what}")


def settlement_for(session: Session, principal: Principal, settlement_id: str) -> Settlement:
    """The settlement if the caller may see it (hospital keys: their own; district reviewers: their
    district's persons); 404 otherwise, the same as for one that does not exist."""
    row = visible(repository.get(session, settlement_id), principal, settlement_id)
    check_district(session, principal, row.person_id, settlement_id)
    return row


def record_of(review: Review, settlement_id: str) -> dict[str, Any]:
    return {
        "id": review.id,
        "settlement_id": settlement_id,
        "decision": review.decision,
        "note": review.note,
        "actor": review.actor,
        "at": iso_utc(review.at),
        "batch_id": review.batch_id,
    }


def _check_decision(decision: str, note: str | None) -> str | None:
    if decision not in DECISIONS:
        raise ServiceError(
            422, "invalid_request", f"decision: one of {', '.join(DECISIONS)}; got {decision!r}",
            errors=[{"field": "decision", "in": "body", "message": f"one of {', '.join(DECISIONS)}"}],
        )
    note = (note or "").strip() or None  # blank: no note
    if note is not None and len(note) > NOTE_MAX:
        raise ServiceError(
            422, "invalid_request", f"note: at most {NOTE_MAX} characters",
            errors=[{"field": "note", "in": "body", "message": f"at most {NOTE_MAX} characters"}],
        )
    if decision in ("query", "recover") and note is None:
        raise ServiceError(
            422, "note_required", f"a {decision} decision needs a note saying why (审核意见)",
            errors=[{"field": "note", "in": "body", "message": f"required for {decision}"}],
        )
    return note


def _upsert_status(session: Session, status: str, *records: ColumnElement[bool]) -> None:
    """Moves the review statuses of the settlements of these records (conditions on ``settlement_reviews``) to
    ``status`` unless a later record already moved them; a new status row carries its settlement's
    REVIEWED_CARRIED columns, read beside the record (they never change, so a moved row keeps them)."""
    table = ReviewStatus.__table__
    assert isinstance(table, Table)
    source = (
        select(Review.settlement_seq, literal(status), Review.id, Review.at,
               *(getattr(Settlement, name) for name in REVIEWED_CARRIED))
        .join_from(Review, Settlement, Settlement.seq == Review.settlement_seq)
        .where(*records)  # a WHERE: SQLite's INSERT … SELECT … ON CONFLICT needs one after a join
    )
    columns = ["settlement_seq", "status", "review_id", "at", *REVIEWED_CARRIED]
    stmt = upsert(session, table).from_select(columns, source)
    stmt = stmt.on_conflict_do_update(
        index_elements=["settlement_seq"],
        set_={"status": stmt.excluded.status, "review_id": stmt.excluded.review_id, "at": stmt.excluded.at},
        where=table.c.review_id < stmt.excluded.review_id,
    )
    session.execute(stmt)


def add_review(
    session: Session,
    ctx: ServiceContext,
    principal: Principal,
    settlement_id: str,
    decision: str,
    note: str | None,
) -> dict[str, Any]:
    """Records a decision (approve, query, recover) or a comment; returns the record.

    403 unless reviewer or admin; 404 for a settlement the caller may not see; 422 for a
    query or recover without a note (note_required) or an unknown decision.
    """
    check_role(principal, REVIEWERS)
    note = _check_decision(decision, note)
    row = settlement_for(session, principal, settlement_id)
    review = Review(settlement_seq=row.seq, decision=decision, note=note, actor=principal.actor, at=ctx.now())
    session.add(review)
    session.flush()
    if decision in STATUS_OF:
        _upsert_status(session, STATUS_OF[decision], Review.id == review.id)
    return record_of(review, row.settlement_id)


def list_reviews(session: Session, principal: Principal, settlement_id: str) -> list[dict[str, Any]]:
    """The settlement's records, oldest first."""
    row = settlement_for(session, principal, settlement_id)
    reviews = session.scalars(select(Review).where(Review.settlement_seq == row.seq).order_by(Review.id))
    return [record_of(r, row.settlement_id) for r in reviews]


def review_panel(session: Session, principal: Principal, settlement_id: str) -> dict[str, Any]:
    """What the settlement page's review panel shows: ``{"review_status", "flags", "reviews"}``."""
    row = settlement_for(session, principal, settlement_id)
    statuses, flags = review_facts(session, [row.seq])
    return {
        "review_status": statuses[row.seq],
        "flags": flags[row.seq],
        "reviews": list_reviews(session, principal, settlement_id),
    }


def with_review(session: Session, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """A settlement resource (settlements.service.body_of) with its review status and flags;
    404 for a district-scoped caller outside the person's district."""
    check_district(session, principal, body.get("person_id"), str(body.get("settlement_id")))
    seq = session.scalar(select(Settlement.seq).where(Settlement.settlement_id == body["settlement_id"]))
    statuses, flags = review_facts(session, [seq] if seq is not None else [])
    body["review_status"] = statuses.get(seq, "pending") if seq is not None else "pending"
    body["flags"] = flags.get(seq, []) if seq is not None else []
    return body


def bulk_approve(
    session: Session,
    ctx: ServiceContext,
    principal: Principal,
    flt: SettlementFilter,
    *,
    expected_count: int,
    expected_total: int,
    note: str | None = None,
) -> dict[str, Any]:
    """Approves every settlement of the filter: one record each, one batch id for all.

    The confirmation guard: the caller states the count and the total (fen) it showed; if the
    filter now means other settlements (new ones settled, others reviewed), 409 count_mismatch
    with what it means now, and nothing is written. The set counted is the set written (both
    read in this transaction, the records inserted for exactly those seqs).
    """
    check_role(principal, REVIEWERS)
    note = _check_decision("approve", note)
    pairs = matching_seqs(session, ctx, principal, flt)
    count, total = len(pairs), sum(t for _s, t in pairs)
    if count != expected_count or total != expected_total:
        raise ServiceError(
            409, "count_mismatch",
            f"the filter now matches {count} settlements totalling {format_fen(total)}, not {expected_count}"
            f" totalling {format_fen(expected_total)}; look again and confirm the new figures",
            count=count, total=format_fen(total),
        )
    if count > BULK_MAX:
        raise ServiceError(
            422, "invalid_request", f"at most {BULK_MAX} settlements in one bulk approval; narrow the filter",
        )
    batch = str(uuid.uuid4())
    now = ctx.now()
    seqs = [s for s, _t in pairs]
    for start in range(0, len(seqs), 1000):
        part = seqs[start : start + 1000]
        session.execute(
            Review.__table__.insert().from_select(  # type: ignore[attr-defined]
                ["settlement_seq", "decision", "note", "actor", "at", "batch_id"],
                select(
                    Settlement.seq, literal("approve"), literal(note), literal(principal.actor),
                    literal(now, Review.at.type), literal(batch),
                ).where(Settlement.seq.in_(part)).order_by(Settlement.seq),
            )
        )
        _upsert_status(session, "approved", Review.settlement_seq.in_(part), Review.batch_id == batch)
    session.flush()
    return {"batch_id": batch, "approved": count, "total": format_fen(total), "actor": principal.actor,
            "at": iso_utc(now)}

