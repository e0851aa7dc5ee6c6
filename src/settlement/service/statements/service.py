"""Statements of one fund by day or month, their ledger lines, and period closes (月结).

Booking: a ledger entry counts on the date of its event — the settlement or
the reversal — in the service's time zone (SETTLEMENT_TIMEZONE, default
Asia/Shanghai). The event's time is stamped by the service right before the
transaction that writes it commits (``business_date`` of the ledger), so a
reversal counts on the day it was made, whatever the day of the settlement.

Closing a month freezes which entries it holds: those booked in it with an
id at most the close's watermark (``through_entry``). The watermark is read
under ``LOCK TABLE ledger_entries IN SHARE MODE`` (PostgreSQL) — a lock that
waits for every transaction that has written ledger entries and is not yet
committed, and holds new ones back only for the instant of one ``max(id)`` —
so every entry with a larger id commits after the close. The hot writers
(``counter_settle``, ``counter_reverse`` and the locked way) are unchanged.
An entry stamped in a closed month that commits after its close (a settle
stamped at 23:59:59 that commits after the month was closed) is *late*: it
is booked, at read time, into the first month that closed after it or else
the first open month, as an adjustment naming its month. A reversal of a
settlement booked in a closed month is an adjustment naming that month. A
closed month's statement never changes: its entries and the late ones it took
are fixed by the watermarks, and its totals and the SHA-256 of its lines are
stored. On SQLite a single writer holds the database lock, so max(id) is
already a watermark.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from sqlalchemy import Select, and_, case, false, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from settlement.money import format_fen
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.errors import ServiceError, forbidden, invalid_request
from settlement.service.funds.service import visible_fund
from settlement.service.settlements.models import LedgerEntry, Settlement
from settlement.tabular import Column

from .models import PeriodClose

By = Literal["day", "month"]
LINES_LIMIT = 1000
"""Most lines a JSON page returns."""

ROW_COLUMNS = [
    Column("period", "期间"),
    Column("hospital_id", "医疗机构编码"),
    Column("fund", "基金"),
    Column("adjusts", "调整所属期间"),
    Column("settlements", "结算笔数", "int"),
    Column("reversals", "撤销笔数", "int"),
    Column("amount", "金额", "money"),
]
LINE_COLUMNS = [
    Column("entry_id", "分录号", "int"),
    Column("period", "期间"),
    Column("settlement_id", "结算ID", width=38),
    Column("hospital_id", "医疗机构编码"),
    Column("claim_id", "结算单号"),
    Column("person_id", "身份证号", width=20),
    Column("kind", "类型"),
    Column("booked_at", "记账时间", "datetime"),
    Column("adjusts", "调整所属期间"),
    Column("amount", "金额", "money"),
]


def month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a YYYY-MM month (400 when it is not one)."""
    try:
        if len(period) != 7:
            raise ValueError(period)
        first = dt.date.fromisoformat(period + "-01")
    except ValueError:
        raise invalid_request(
            f"not a month: {period!r} (YYYY-MM)", [{"field": "period", "message": "expected YYYY-MM"}]
        ) from None
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def _next_month(period: str) -> str:
    return month_of(month_bounds(period)[1] + dt.timedelta(days=1))


@dataclass(frozen=True)
class Closes:
    """A fund's closed months (in order) and their watermarks: where each entry is booked."""

    fund: str
    watermarks: dict[str, int]
    """period → through_entry."""

    @classmethod
    def read(cls, session: Session, fund: str) -> Closes:
        rows = session.execute(
            select(PeriodClose.period, PeriodClose.through_entry)
            .where(PeriodClose.fund == fund)
            .order_by(PeriodClose.period)
        ).all()
        return cls(fund, {p: int(w) for p, w in rows})

    @property
    def last(self) -> str | None:
        return max(self.watermarks) if self.watermarks else None

    def is_late(self, period: str, entry_id: int) -> bool:
        w = self.watermarks.get(period)
        return w is not None and entry_id > w

    def booked_period(self, period: str, entry_id: int) -> str:
        """The month an entry stamped in `period` is booked in (its own unless late)."""
        if not self.is_late(period, entry_id):
            return period
        k = _next_month(period)
        while k in self.watermarks and entry_id > self.watermarks[k]:
            k = _next_month(k)
        return k

    def late_predicate(self) -> Any:
        """SQL: the entry is late (stamped in a closed month, committed after its close)."""
        terms = []
        for period, w in self.watermarks.items():
            first, last = month_bounds(period)
            terms.append(and_(LedgerEntry.business_date.between(first, last), LedgerEntry.id > w))
        return or_(*terms) if terms else false()


def _adjusts(closes: Closes, kind: str, period: str, source_day: dt.date | None) -> str | None:
    """The closed month a line adjusts: a late entry's own month; a reversal's settlement's closed month."""
    if kind == "reversed" and source_day is not None:
        source = month_of(source_day)
        if source in closes.watermarks and source != period:
            return source
    return None


def _read_closes(
    session: Session, ctx: ServiceContext, principal: Principal, fund: str, start: dt.date, end: dt.date
) -> Closes:
    """The fund's closes, once the caller may see the fund (404/403) and [start, end] is a range (400)."""
    visible_fund(ctx, principal, fund)
    if end < start:
        raise invalid_request(
            f"to ({end}) is before from ({start})", [{"field": "to", "message": "must be on or after from"}]
        )
    return Closes.read(session, fund)


def _totals(sums: dict[tuple[str, str, str | None], list[int]]) -> tuple[int, int, int]:
    """(settlements, reversals, amount) over every cell of _aggregate's sums."""
    cells = sums.values()
    return sum(c[0] for c in cells), sum(c[1] for c in cells), sum(c[2] for c in cells)


def _period_key(day: dt.date, by: By) -> str:
    return day.isoformat() if by == "day" else month_of(day)


def _source() -> tuple[Any, Any]:
    """The settled entry a reversed entry negates (same settlement, same fund), and the outer join's condition."""
    source, e = aliased(LedgerEntry, name="source"), LedgerEntry
    return source, and_(
        e.kind == "reversed", source.settlement_seq == e.settlement_seq, source.fund == e.fund, source.kind == "settled"
    )


def statement(
    session: Session,
    ctx: ServiceContext,
    principal: Principal,
    fund: str,
    start: dt.date,
    end: dt.date,
    *,
    hospital_id: str | None = None,
    by: By = "month",
) -> dict[str, Any]:
    """Rows {period, hospital_id, fund, adjusts, settlements, reversals, amount} and totals."""
    closes = _read_closes(session, ctx, principal, fund, start, end)
    sums = _aggregate(session, closes, start, end, hospital_id, by)
    rows = [
        {"period": period, "hospital_id": hospital, "fund": fund, "adjusts": adjusts, "settlements": n_settled,
         "reversals": n_reversed, "amount": amount}
        for (period, hospital, adjusts), (n_settled, n_reversed, amount) in sorted(
            sums.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
        )
    ]
    settlements, reversals, amount = _totals(sums)
    return {
        "fund": fund,
        "from": start,
        "to": end,
        "by": by,
        "time_zone": ctx.settings.timezone,
        "closed": sorted(p for p in closes.watermarks if month_of(start) <= p <= month_of(end)),
        "rows": rows,
        "totals": {"settlements": settlements, "reversals": reversals, "amount": amount},
    }


def _aggregate(
    session: Session, closes: Closes, start: dt.date, end: dt.date, hospital_id: str | None, by: By
) -> dict[tuple[str, str, str | None], list[int]]:
    source, reverses = _source()
    e = LedgerEntry
    base = (
        select(e.business_date, e.hospital_id, e.kind, source.business_date, func.count(), func.sum(e.amount_fen))
        .outerjoin(source, reverses)
        .where(e.fund == closes.fund, e.business_date.between(start, end), ~closes.late_predicate())
        .group_by(e.business_date, e.hospital_id, e.kind, source.business_date)
    )
    if hospital_id is not None:
        base = base.where(e.hospital_id == hospital_id)
    sums: dict[tuple[str, str, str | None], list[int]] = {}

    def add(period: str, hospital: str, adjusts: str | None, kind: str, n: int, amount: int) -> None:
        cell = sums.setdefault((period, hospital, adjusts), [0, 0, 0])
        cell[0 if kind == "settled" else 1] += n
        cell[2] += amount

    for day, hospital, kind, source_day, n, amount in session.execute(base):
        add(
            _period_key(day, by), hospital, _adjusts(closes, kind, month_of(day), source_day), kind, int(n), int(amount)
        )
    for line in _late_lines(session, closes, start, end, hospital_id):
        add(_period_key(line["booked_on"], by), line["hospital_id"], line["adjusts"], line["kind"], 1, line["amount"])
    return sums


def _line_query(closes: Closes) -> Select[Any]:
    source, reverses = _source()
    e = LedgerEntry
    return (
        select(
            e.id, Settlement.settlement_id, e.hospital_id, Settlement.claim_id, Settlement.person_id, e.kind, e.at,
            e.business_date, e.amount_fen, source.business_date,
        )
        .join(Settlement, Settlement.seq == e.settlement_seq)
        .outerjoin(source, reverses)
        .where(e.fund == closes.fund)
        .order_by(e.id)
    )


def _line(closes: Closes, row: Any, late: bool) -> dict[str, Any]:
    entry_id, settlement_id, hospital, claim_id, person_id, kind, at, day, amount, source_day = row
    month = month_of(day)
    if late:
        booked = closes.booked_period(month, entry_id)
        booked_on = month_bounds(booked)[0]
        adjusts: str | None = month
    else:
        booked, booked_on = month, day
        adjusts = _adjusts(closes, kind, month, source_day)
    return {
        "entry_id": int(entry_id),
        "period": booked,
        "booked_on": booked_on,
        "settlement_id": settlement_id,
        "hospital_id": hospital,
        "claim_id": claim_id,
        "person_id": person_id,
        "kind": kind,
        "booked_at": at,
        "adjusts": adjusts,
        "amount": int(amount),
    }


def _late_lines(
    session: Session, closes: Closes, start: dt.date, end: dt.date, hospital_id: str | None
) -> list[dict[str, Any]]:
    """Late entries (rare) booked into [start, end]: on the first day of the month they are booked in."""
    if not closes.watermarks:
        return []
    query = _line_query(closes).where(closes.late_predicate())
    if hospital_id is not None:
        query = query.where(LedgerEntry.hospital_id == hospital_id)
    lines = (_line(closes, row, True) for row in session.execute(query))
    return [line for line in lines if start <= line["booked_on"] <= end]


def lines(
    session: Session,
    ctx: ServiceContext,
    principal: Principal,
    fund: str,
    start: dt.date,
    end: dt.date,
    *,
    after: int | None = None,
    limit: int | None = None,
    hospital_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """One line per ledger entry booked in [start, end], by entry id (after `after`), at most `limit`."""
    closes = _read_closes(session, ctx, principal, fund, start, end)
    return _lines(session, closes, start, end, after=after, limit=limit, hospital_id=hospital_id)


def _lines(
    session: Session,
    closes: Closes,
    start: dt.date,
    end: dt.date,
    *,
    after: int | None = None,
    limit: int | None = None,
    hospital_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    late = [x for x in _late_lines(session, closes, start, end, hospital_id) if after is None or x["entry_id"] > after]
    query = _line_query(closes).where(LedgerEntry.business_date.between(start, end), ~closes.late_predicate())
    if hospital_id is not None:
        query = query.where(LedgerEntry.hospital_id == hospital_id)
    if after is not None:
        query = query.where(LedgerEntry.id > after)
    if limit is not None:
        query = query.limit(limit)
    rows = (_line(closes, row, False) for row in session.execute(query.execution_options(yield_per=5000)))
    yield from islice(heapq.merge(late, rows, key=lambda line: line["entry_id"]), limit)


def line_digest(rows: Iterator[dict[str, Any]]) -> tuple[str, int]:
    """SHA-256 of the lines in a fixed text form, one per line (entry id order), and their count:
    entry_id,period,settlement_id,hospital_id,claim_id,person_id,kind,booked_at ISO,adjusts,amount fen."""
    digest = hashlib.sha256()
    n = 0
    for r in rows:
        at = r["booked_at"]
        stamp = at.astimezone(dt.UTC).isoformat() if isinstance(at, dt.datetime) else str(at)
        fields = (
            r["entry_id"], r["period"], r["settlement_id"], r["hospital_id"], r["claim_id"], r["person_id"], r["kind"],
            stamp, r["adjusts"] or "", r["amount"],
        )
        digest.update((",".join(str(f) for f in fields) + "\n").encode())
        n += 1
    return digest.hexdigest(), n


def close_out(close: PeriodClose) -> dict[str, Any]:
    return {
        "fund": close.fund,
        "period": close.period,
        "settlements": close.settlements,
        "reversals": close.reversals,
        "amount": format_fen(close.amount_fen),
        "lines": close.lines,
        "lines_sha256": close.lines_sha256,
        "through_entry": close.through_entry,
        "rows": close.rows,
        "closed_at": close.closed_at,
        "closed_by": close.closed_by,
    }


def list_closes(session: Session, ctx: ServiceContext, principal: Principal, fund: str) -> list[dict[str, Any]]:
    visible_fund(ctx, principal, fund)
    rows = session.scalars(select(PeriodClose).where(PeriodClose.fund == fund).order_by(PeriodClose.period))
    return [close_out(r) for r in rows]


def _watermark(session: Session) -> int:
    """The largest ledger entry id, read when no ledger write is in flight (see the module's docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL lock_timeout = '5s'"))
        session.execute(text("LOCK TABLE ledger_entries IN SHARE MODE"))
    w = session.scalar(select(func.coalesce(func.max(LedgerEntry.id), 0)))
    session.commit()  # the lock is held for the max() only
    return int(w or 0)


def close_period(session: Session, ctx: ServiceContext, principal: Principal, fund: str, period: str) -> dict[str, Any]:
    """Freezes a month's statement of one fund: a new PeriodClose row (admin, or an insurer key of that fund).

    Only a month that has ended (in the service's time zone) may close; months close in order."""
    visible_fund(ctx, principal, fund)
    if principal.role == Role.INSURER and principal.funds is None:
        raise forbidden("only an admin or an insurer key limited to this fund may close its months")
    first, last = month_bounds(period)
    today = ctx.today()
    if today <= last:
        raise ServiceError(409, "period_open", f"{period} has not ended yet ({ctx.settings.timezone}: {today})")
    closes = Closes.read(session, fund)
    if period in closes.watermarks:
        raise ServiceError(409, "period_closed", f"{period} of {fund} is already closed; a closed month never reopens")
    previous = closes.last
    if previous is not None and period != _next_month(previous):
        if period < previous:
            raise ServiceError(409, "period_closed", f"{fund} is closed through {previous}; {period} cannot close now")
        raise ServiceError(409, "period_order", f"months close in order: close {_next_month(previous)} of {fund} first")
    session.rollback()
    watermark = max(_watermark(session), max(closes.watermarks.values(), default=0))
    frozen = Closes(fund, {**closes.watermarks, period: watermark})
    sums = _aggregate(session, frozen, first, last, None, "month")
    rows = [
        {"hospital_id": h, "adjusts": a, "settlements": s, "reversals": r, "amount": format_fen(amount)}
        for (_, h, a), (s, r, amount) in sorted(sums.items(), key=lambda kv: (kv[0][1], kv[0][2] or ""))
    ]
    digest, count = line_digest(_lines(session, frozen, first, last))
    settlements, reversals, amount_fen = _totals(sums)
    close = PeriodClose(
        fund=fund,
        period=period,
        previous=previous,
        through_entry=watermark,
        settlements=settlements,
        reversals=reversals,
        amount_fen=amount_fen,
        lines=count,
        lines_sha256=digest,
        rows=rows,
        closed_at=ctx.now(),
        closed_by=principal.actor,
    )
    session.add(close)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ServiceError(
            409, "period_closed", f"{period} of {fund} was closed, or the month before it was not, meanwhile"
        ) from None
    return close_out(close)


def per_settlement(
    session: Session, ctx: ServiceContext, principal: Principal, fund: str, start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """Net amount per settlement of one fund booked in [start, end] (as statements book it), and whether
    a reversal of it is booked there: {settlement_id, hospital_id, claim_id, amount, reversed}."""
    closes = _read_closes(session, ctx, principal, fund, start, end)
    e = LedgerEntry
    query = (
        select(
            Settlement.settlement_id, Settlement.hospital_id, Settlement.claim_id, func.sum(e.amount_fen),
            func.max(case((e.kind == "reversed", 1), else_=0)),
        )
        .join(Settlement, Settlement.seq == e.settlement_seq)
        .where(e.fund == fund, e.business_date.between(start, end), ~closes.late_predicate())
        .group_by(Settlement.settlement_id, Settlement.hospital_id, Settlement.claim_id)
    )
    out: dict[str, dict[str, Any]] = {}

    def add(settlement_id: str, hospital: str, claim_id: str, amount: int, reversed_: bool) -> None:
        row = out.setdefault(settlement_id, {"settlement_id": settlement_id, "hospital_id": hospital,
                                             "claim_id": claim_id, "amount": 0, "reversed": False})
        row["amount"] += int(amount)
        row["reversed"] = row["reversed"] or bool(reversed_)

    for settlement_id, hospital, claim_id, amount, reversed_ in session.execute(query):
        add(settlement_id, hospital, claim_id, amount, reversed_)
    for line in _late_lines(session, closes, start, end, None):
        add(line["settlement_id"], line["hospital_id"], line["claim_id"], line["amount"], line["kind"] == "reversed")
    return list(out.values())
