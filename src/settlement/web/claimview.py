"""What the settlement page shows beyond the API's body: the claim's lines with their parts,
the person-year totals before and after with the caps, and the events.

The line parts come from the engine's own §5.1 kernel run with one "claim" per
line (the claim's parts are the sums of its lines'), so the page never
recomputes a rule; the caps are read from the schedule version the claim was
settled under.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.engine import kernel
from settlement.money import RATE_SCALE
from settlement.schedules.types import ScheduleVersion
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.settlements import repository
from settlement.service.settlements.counter import prepare
from settlement.service.settlements.models import Settlement, SettlementEvent
from settlement.service.settlements.service import body_of, decode_claim, visible


@dataclass
class Line:
    code: str
    name: str
    cls: str
    quantity: str
    unit_price: str
    """yuan, as the claim states it"""
    amount_fen: int
    fully_self_paid_fen: int
    over_limit_fen: int
    pre_self_paid_fen: int
    in_scope_fen: int


@dataclass
class CapRow:
    """One accumulator of the person-year: before and after this claim, and its annual cap."""

    label: str
    before_fen: int
    after_fen: int
    cap_fen: int | None

    @property
    def remaining_fen(self) -> int | None:
        return None if self.cap_fen is None else max(0, self.cap_fen - self.after_fen)


@dataclass
class SettlementView:
    row: Settlement
    body: dict[str, Any]
    claim: Any
    lines: list[Line]
    caps: list[CapRow]
    events: list[SettlementEvent]
    fund_names: dict[str, str] = field(default_factory=dict)


def _scaled(value: int) -> str:
    """A ×10^4 decimal as people write it (19, 2.5, 36.2)."""
    whole, frac = divmod(int(value), RATE_SCALE)
    return f"{whole}" if frac == 0 else f"{whole}.{frac:04d}".rstrip("0")


def load(session: Session, ctx: ServiceContext, principal: Principal, settlement_id: str) -> SettlementView:
    """The settlement as the page shows it; 404 when missing or not visible to this principal."""
    row = visible(repository.get(session, settlement_id), principal, settlement_id)
    claim = decode_claim(row.request_body.encode())
    cc = prepare(claim, ctx.tables, row.scheme, row.category)
    version = ctx.tables.schedules.versions[cc.prepared.version]
    lines = _lines(cc, version)
    events = list(session.scalars(
        select(SettlementEvent).where(SettlementEvent.settlement_seq == row.seq).order_by(SettlementEvent.seq)
    ))
    return SettlementView(
        row=row, body=body_of(row), claim=claim, lines=lines, caps=_caps(row, version), events=events,
        fund_names={f.id: f.name for f in version.charity_funds},
    )


def _lines(cc: Any, version: ScheduleVersion) -> list[Line]:
    batch, tables = cc.batch, cc.tables
    n = len(batch.line_item)
    parts = [np.zeros(n, dtype=np.int64) for _ in range(4)]
    kernel.line_kernel(
        np.arange(n + 1, dtype=np.int64), batch.line_item, batch.line_qty, batch.line_price,
        tables.item_class, tables.item_ratio_bp, tables.item_cap_fen, *parts,
    )
    fully, over, pre, in_scope = parts
    out = []
    for j, item in enumerate(cc.claim.items):
        entry = version.catalog[item.code]
        out.append(Line(
            code=item.code, name=entry.name, cls=entry.cls, quantity=_scaled(int(batch.line_qty[j])),
            unit_price=_scaled(int(batch.line_price[j])),
            amount_fen=int(fully[j] + over[j] + pre[j] + in_scope[j]),
            fully_self_paid_fen=int(fully[j]), over_limit_fen=int(over[j]), pre_self_paid_fen=int(pre[j]),
            in_scope_fen=int(in_scope[j]),
        ))
    return out


def _fen(value: str | int | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    sign = -1 if value.startswith("-") else 1
    whole, _, frac = value.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int((frac + "00")[:2]))


def _caps(row: Settlement, version: ScheduleVersion) -> list[CapRow]:
    """The accumulators with an annual cap, before and after this claim (after = stored; before = after
    minus this claim's contribution)."""
    after = row.accumulators_after
    added = row.contribution.get("person_year", {})
    vt = row.visit_type
    caps: list[CapRow] = []

    def add(label: str, after_fen: int, contribution: int, cap: int | None) -> None:
        caps.append(CapRow(label, after_fen - contribution, after_fen, cap))

    section = version.basic.sections.get((row.scheme or "", vt))  # none for an unidentified patient
    add(f"basic:{vt}", _fen(after.get("basic_paid", {}).get(vt)), int(added.get("basic_paid", {}).get(vt, 0)),
        section.annual_cap_fen if section else None)
    crit = version.critical_illness
    if crit is not None and row.scheme in crit.sections:
        adj = crit.category_adjustments.get(row.category or "")
        cap = None if adj is not None and adj.uncapped else crit.sections[row.scheme].annual_cap_fen
        add("critical_illness", _fen(after.get("critical_paid")), int(added.get("critical_paid", 0)), cap)
    assist = version.medical_assistance
    if assist is not None and row.category in assist.categories:
        add("medical_assistance", _fen(after.get("assistance_paid")), int(added.get("assistance_paid", 0)),
            assist.categories[row.category].annual_cap_fen)
    for fund in version.charity_funds:
        paid = after.get("charity_paid", {}).get(fund.id)
        if paid is None:
            continue
        add(f"charity:{fund.id}", _fen(paid), int(added.get("charity_paid", {}).get(fund.id, 0)),
            fund.annual_cap_per_person_fen)
    return caps


def to_date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value is not None else None
