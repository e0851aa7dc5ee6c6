"""Reconciliation runs: their file against the ledger (settlement.reconcile matches), stored once.

Ours = the ledger's net amount per settlement of the fund booked in the period
(statements.service.per_settlement), keyed by (hospital id, claim id). A file
with any defect stores nothing and answers 422 with every defect and its line.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.money import format_fen
from settlement.reconcile import KINDS, InputDefects, Item, Ours, match, read_theirs, sha256
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.errors import ServiceError, invalid_request, not_found
from settlement.service.funds.service import visible_fund
from settlement.service.statements.service import per_settlement

from .models import ReconciliationItem, ReconciliationRun


def run(
    session: Session, ctx: ServiceContext, principal: Principal, fund: str, start: dt.date, end: dt.date, name: str,
    data: bytes,
) -> dict[str, Any]:
    """Matches the file against the ledger and stores the run with its items; {id, summary}."""
    visible_fund(ctx, principal, fund)
    if end < start:
        raise invalid_request(f"to ({end}) is before from ({start})", [{"field": "to", "message": "before from"}])
    try:
        theirs = read_theirs(data, name, need_hospital=True)
    except InputDefects as exc:
        raise ServiceError(
            422, "invalid_file", f"{name}: {len(exc.found)} defect(s); nothing was stored",
            errors=[{"line": line, "message": str(message)} for line, message in exc.found],
        ) from exc  # the page says the defects (catalog messages) in its language from the cause
    ours = [
        Ours(r["hospital_id"], r["claim_id"], r["amount"], r["settlement_id"], r["reversed"])
        for r in per_settlement(session, ctx, principal, fund, start, end)
    ]
    report = match(ours, theirs, by_hospital=True)
    run_id = str(uuid.uuid4())
    summary = report.summary()
    session.add(ReconciliationRun(
        id=run_id, fund=fund, period_from=start, period_to=end, input_name=name[:255], input_sha256=sha256(data),
        ran_by=principal.actor, ran_at=ctx.now(), summary=summary,
    ))
    session.flush()
    session.add_all(
        ReconciliationItem(
            run_id=run_id, seq=seq, kind=item.kind, hospital_id=item.hospital_id, claim_id=item.claim_id,
            settlement_id=item.settlement_id, ours_fen=item.ours, theirs_fen=item.theirs, line=item.line,
        )
        for seq, item in enumerate(report.items)
    )
    session.commit()
    return {"id": run_id, "summary": summary}


def _run_row(session: Session, principal: Principal, run_id: str) -> ReconciliationRun:
    row = session.get(ReconciliationRun, run_id)
    if row is None or not principal.sees_fund(row.fund):
        raise not_found(f"no reconciliation {run_id}")
    return row


def get_run(session: Session, ctx: ServiceContext, principal: Principal, run_id: str) -> dict[str, Any]:
    return _run_out(_run_row(session, principal, run_id))


def _run_out(row: ReconciliationRun) -> dict[str, Any]:
    return {
        "id": row.id,
        "fund": row.fund,
        "from": row.period_from,
        "to": row.period_to,
        "input_name": row.input_name,
        "input_sha256": row.input_sha256,
        "ran_by": row.ran_by,
        "ran_at": row.ran_at,
        "summary": row.summary,
    }


def items(
    session: Session, ctx: ServiceContext, principal: Principal, run_id: str, kind: str | None
) -> Iterator[dict[str, Any]]:
    """The run's items in report order (their file's order, then ours only, then reversed), of one kind or all."""
    _run_row(session, principal, run_id)
    if kind is not None and kind not in KINDS:
        raise invalid_request(f"unknown kind {kind!r}", [{"field": "kind", "message": f"one of {', '.join(KINDS)}"}])
    query = select(ReconciliationItem).where(ReconciliationItem.run_id == run_id).order_by(ReconciliationItem.seq)
    if kind is not None:
        query = query.where(ReconciliationItem.kind == kind)
    return (_item(i) for i in session.scalars(query.execution_options(yield_per=5000)))


def _item(i: ReconciliationItem) -> dict[str, Any]:
    return Item(i.kind, i.hospital_id, i.claim_id, i.settlement_id, i.ours_fen, i.theirs_fen, i.line).row()


def as_json(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, **{k: None if item[k] is None else format_fen(item[k]) for k in ("ours", "theirs", "difference")}}


def list_runs(session: Session, principal: Principal, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest runs of the funds the caller sees, newest first: who ran which file (its SHA-256) when."""
    query = select(ReconciliationRun).order_by(ReconciliationRun.ran_at.desc(), ReconciliationRun.id)
    if principal.funds is not None:
        query = query.where(ReconciliationRun.fund.in_(sorted(principal.funds)))
    return [_run_out(r) for r in session.scalars(query.limit(limit))]
