"""The settlements list of the review queue: filters, sort with keyset pagination, totals, export.

One filter (:class:`SettlementFilter`) serves the JSON list, the page of the review
queue, the totals over the whole filter, the export and the bulk approval, so they
always agree on which settlements a filter means. Visibility is applied here too:
a hospital key sees its own hospital's settlements only, a district-scoped reviewer
those of persons registered in the district (``persons.district`` starts with it).

Indexes behind the common filters (migrations 0006 and 0011, docs/PERFORMANCE.md §9): the flags'
(rule, settlement_seq), the review status projection's (status, settlement_seq), a
BRIN on settled_at, the queue's covering index on seq, and the existing ones on
(hospital_id, seq), (person_id, …), discharged. The totals of a filter of settled dates only
add the refresher's block totals (settlements.rollup, migration 0013) to the rows at either end.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, false, func, literal, select, tuple_
from sqlalchemy.orm import Session

from settlement.claims.person_id import normalize_person_id
from settlement.layers import SHARES
from settlement.money import FEN_PER_YUAN, format_fen
from settlement.service import pages
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.errors import ServiceError
from settlement.service.persons.models import Person
from settlement.tabular import Column

from . import rollup
from .models import AMOUNTS, LedgerEntry, Settlement

SORTS: dict[str, Any] = {
    "seq": Settlement.seq,
    "settled_at": Settlement.settled_at,
    "discharged": Settlement.discharged,
    "admitted": Settlement.admitted,
    "total": Settlement.total_fen,
    "backstop": Settlement.backstop_fen,
    "hospital_bears": Settlement.hospital_bears_fen,
    "patient_pays": Settlement.patient_pays_fen,
}
"""Sortable columns (``sort=total`` ascending, ``sort=-total`` descending); ties by seq."""

LAYER_FUND_COLUMNS = {"patient": "patient_pays", "hospital": "hospital_bears"}
"""funds.service.fund_ids' names for the two shares that are nobody's fund."""


def unprocessable(parameter: str, message: str, status: int = 400) -> ServiceError:
    """A refused query parameter, named. 400: a value the OpenAPI document does not allow either (the
    routes' own checks answer first; the pages reach these); refusals of values it allows: ``refused``."""
    return ServiceError(
        status, "invalid_request", f"{parameter}: {message}",
        errors=[{"field": parameter, "in": "query", "message": message}],
    )


def refused(parameter: str, message: str) -> ServiceError:
    """422: a value the OpenAPI document allows, refused by a rule it cannot state (service.errors'
    convention) — a cursor this service did not issue, layer_min/layer_max without layer."""
    return unprocessable(parameter, message, status=422)


def yuan_to_fen(parameter: str, text: str | None) -> int | None:
    """A yuan amount parameter (``1234.5``, ``1234.56``) as fen; 400 naming the parameter otherwise."""
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise unprocessable(parameter, f"not an amount in yuan: {text!r}") from None
    if not value.is_finite() or value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise unprocessable(parameter, f"not an amount in yuan with at most two decimals: {text!r}")
    return int(value * FEN_PER_YUAN)


MONEY_FIELDS = ("total_min", "total_max", "layer_min", "layer_max")


@dataclass(frozen=True)
class SettlementFilter:
    """Every filter of the list; None: no condition. All conditions are ANDed.

    Money bounds are fen (inclusive). ``settled_from``/``settled_to`` are days in the
    service's time zone; ``fund`` is a fund id of funds.service.fund_ids (a layer that paid,
    or a charity fund); ``layer`` with ``layer_min``/``layer_max`` bounds one amount column.
    """

    hospital_id: str | None = None
    person_id: str | None = None
    claim_id: str | None = None
    status: str | None = None
    scheme: str | None = None
    category: str | None = None
    visit_type: str | None = None
    pathway: str | None = None
    disease_group: str | None = None
    discharged_from: dt.date | None = None
    discharged_to: dt.date | None = None
    settled_from: dt.date | None = None
    settled_to: dt.date | None = None
    district: str | None = None
    fund: str | None = None
    review_status: str | None = None
    flag: str | None = None
    total_min: int | None = None
    total_max: int | None = None
    layer: str | None = None
    layer_min: int | None = None
    layer_max: int | None = None

    def query_params(self) -> dict[str, str]:
        """The filter as the list's query parameters (a shareable link; money back in yuan)."""
        out: dict[str, str] = {}
        names = {"discharged_from": "from", "discharged_to": "to"}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in MONEY_FIELDS:
                out[f.name] = format_fen(value)
            else:
                out[names.get(f.name, f.name)] = value.isoformat() if isinstance(value, dt.date) else str(value)
        return out


def make_filter(**values: Any) -> SettlementFilter:
    """A filter from parameter values (field names; money bounds as yuan strings, 422 naming a bad one)."""
    data = {k: v for k, v in values.items() if v is not None and v != ""}
    for name in MONEY_FIELDS:
        if name in data:
            data[name] = yuan_to_fen(name, str(data[name]))
    return SettlementFilter(**data)


def check_filter(ctx: ServiceContext, principal: Principal, flt: SettlementFilter) -> SettlementFilter:
    """The filter validated (422/404 naming the parameter) and narrowed to what the caller may see."""
    from settlement.service.funds.service import visible_fund
    from settlement.service.reviews.models import REVIEW_STATUSES
    from settlement.service.reviews.rules import RULES

    if flt.review_status is not None and flt.review_status not in REVIEW_STATUSES:
        raise unprocessable("review_status", f"one of {', '.join(REVIEW_STATUSES)}; got {flt.review_status!r}")
    if flt.flag is not None and flt.flag not in RULES:
        raise unprocessable("flag", f"one of {', '.join(RULES)}; got {flt.flag!r}")
    if flt.layer is not None and flt.layer not in AMOUNTS:
        raise unprocessable("layer", f"one of {', '.join(AMOUNTS)}; got {flt.layer!r}")
    if (flt.layer_min is not None or flt.layer_max is not None) and flt.layer is None:
        raise refused("layer", "layer_min and layer_max need layer (the amount they bound)")
    if flt.district is not None and not (flt.district.isdigit() and 2 <= len(flt.district) <= 6):
        raise unprocessable("district", f"a 行政区划代码 prefix of 2-6 digits; got {flt.district!r}")
    if flt.fund is not None:
        visible_fund(ctx, principal, flt.fund)
    if flt.person_id:
        flt = replace(flt, person_id=normalize_person_id(flt.person_id))
    if principal.role == Role.HOSPITAL:
        if flt.hospital_id is not None and flt.hospital_id != principal.hospital_id:
            flt = replace(flt, hospital_id="")  # another hospital's: an empty list (no hospital id is empty)
        else:
            flt = replace(flt, hospital_id=principal.hospital_id)
    return flt


def _day_start(ctx: ServiceContext, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=ctx.tz).astimezone(dt.UTC)


def _day_end(ctx: ServiceContext, day: dt.date) -> dt.datetime:
    """The start of the next day: a settled-date range ends before it."""
    return _day_start(ctx, day + dt.timedelta(days=1))


Bounds = tuple[int | None, int | None]


def seq_bounds(session: Session, ctx: ServiceContext, flt: SettlementFilter) -> Bounds:
    """(low, high): every settlement of the filter's settled-date range has low < seq <= high (None: no
    bound), from the refresher's seq marks (reviews.models.SeqMark). The range condition on settled_at
    stays; the bounds let the database read the range as a range of the primary key."""
    from settlement.service.reviews.models import SeqMark

    margin = dt.timedelta(seconds=ctx.settings.flags_refresh_margin_seconds)
    low = high = None
    if flt.settled_from is not None:
        before = _day_start(ctx, flt.settled_from) - margin
        low = session.scalar(select(SeqMark.seq).where(SeqMark.at_hi <= before).order_by(SeqMark.at_hi.desc()).limit(1))
    if flt.settled_to is not None:
        after = _day_end(ctx, flt.settled_to) + margin
        high = session.scalar(select(SeqMark.seq).where(SeqMark.at_lo >= after).order_by(SeqMark.at_lo).limit(1))
    return low, high


def conditions(
    ctx: ServiceContext, principal: Principal, flt: SettlementFilter, bounds: Bounds = (None, None)
) -> list[ColumnElement[bool]]:
    """The WHERE of a (checked) filter, as conditions on ``settlements``; visibility included."""
    from settlement.service.reviews.models import ReviewStatus, SettlementFlag
    from settlement.service.settlements import visibility

    s = Settlement
    # status IS NOT NULL (true of every row) lets a hospital's listing use its partial index (0003)
    where: list[ColumnElement[bool]] = [s.status.is_not(None)]
    if bounds[0] is not None:
        where.append(s.seq > bounds[0])
    if bounds[1] is not None:
        where.append(s.seq <= bounds[1])
    for column, value in (
        (s.hospital_id, flt.hospital_id),
        (s.person_id, flt.person_id),
        (s.claim_id, flt.claim_id),
        (s.status, flt.status),
        (s.scheme, flt.scheme),
        (s.category, flt.category),
        (s.visit_type, flt.visit_type),
        (s.pathway, flt.pathway),
        (s.disease_group, flt.disease_group),
    ):
        if value is not None:
            where.append(column == value)
    if flt.discharged_from is not None:
        where.append(s.discharged >= flt.discharged_from)
    if flt.discharged_to is not None:
        where.append(s.discharged <= flt.discharged_to)
    where.extend(_settled_in(ctx, flt, s.settled_at))
    if flt.total_min is not None:
        where.append(s.total_fen >= flt.total_min)
    if flt.total_max is not None:
        where.append(s.total_fen <= flt.total_max)
    if flt.layer is not None:
        column = getattr(s, f"{flt.layer}_fen")
        if flt.layer_min is not None:
            where.append(column >= flt.layer_min)
        if flt.layer_max is not None:
            where.append(column <= flt.layer_max)
    if flt.fund is not None:
        where.append(_fund_paid(flt.fund, bounds))
    # the seq range stated on the other tables too: the database can then merge them with the settlements'
    # range (one pass over each, both in seq order) instead of probing one index per settlement
    if flt.review_status == "pending":
        where.append(~exists().where(ReviewStatus.settlement_seq == s.seq, *_within(ReviewStatus.settlement_seq,
                                                                                     bounds)))
    elif flt.review_status is not None:
        where.append(exists().where(ReviewStatus.settlement_seq == s.seq, ReviewStatus.status == flt.review_status,
                                    *_within(ReviewStatus.settlement_seq, bounds)))
    if flt.flag is not None:
        where.append(exists().where(SettlementFlag.settlement_seq == s.seq, SettlementFlag.rule == flt.flag,
                                    *_within(SettlementFlag.settlement_seq, bounds)))
    if principal.funds is not None:  # a fund-limited insurer key: the settlements its funds paid (visibility)
        where.append(visibility.paid_by(principal.funds))
    for district in (flt.district, principal.district):
        if district is not None:
            where.append(_in_district(district))
    return where


def _settled_in(ctx: ServiceContext, flt: SettlementFilter, column: Any) -> list[ColumnElement[bool]]:
    """The filter's settled-date range as conditions on this settled_at column."""
    where = []
    if flt.settled_from is not None:
        where.append(column >= _day_start(ctx, flt.settled_from))
    if flt.settled_to is not None:
        where.append(column < _day_end(ctx, flt.settled_to))
    return where


def _reviewed_only(principal: Principal, flt: SettlementFilter) -> bool:
    """Whether the (checked) filter is a review status other than pending, perhaps with settled dates, and
    nothing else, for a caller that sees every settlement and amount: then the review status rows, which
    carry their settlements' dates and amounts (reviews.models.REVIEWED_CARRIED), answer it alone — one
    range of their index instead of one probe of the settlements' per match (PERFORMANCE.md §9.1e)."""
    if principal.funds is not None or principal.district is not None:
        return False
    if flt.review_status is None or flt.review_status == "pending":
        return False
    return replace(flt, review_status=None, settled_from=None, settled_to=None) == SettlementFilter()


def _reviewed_conditions(ctx: ServiceContext, flt: SettlementFilter, bounds: Bounds) -> list[ColumnElement[bool]]:
    """A _reviewed_only filter as conditions on ``settlement_review_status``."""
    from settlement.service.reviews.models import ReviewStatus as rs

    return [rs.status == flt.review_status, *_within(rs.settlement_seq, bounds), *_settled_in(ctx, flt, rs.settled_at)]


def _in_district(prefix: str) -> ColumnElement[bool]:
    district = Person.__table__.c.get("district")
    if district is None:  # the registry has no districts (before migration 0005): no person is in one
        return false()
    return exists().where(Person.person_id == Settlement.person_id, district.startswith(prefix, autoescape=True))


def _within(column: Any, bounds: Bounds) -> list[ColumnElement[bool]]:
    low, high = bounds
    return [*([column > low] if low is not None else []), *([column <= high] if high is not None else [])]


def _fund_paid(fund: str, bounds: Bounds = (None, None)) -> ColumnElement[bool]:
    """The fund (a layer, a charity fund, or the patient's or hospital's share) paid part of the bill."""
    name = LAYER_FUND_COLUMNS.get(fund, fund)
    column = getattr(Settlement, f"{name}_fen", None) if name in AMOUNTS else None
    if column is not None:
        return column > 0  # type: ignore[no-any-return]
    le = LedgerEntry
    return exists().where(le.settlement_seq == Settlement.seq, le.kind == "settled", le.fund == fund,
                          *_within(le.settlement_seq, bounds))


# -- sort and cursor ---------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    key: str
    descending: bool

    @classmethod
    def parse(cls, text: str | None) -> Sort:
        if not text:
            return cls("seq", False)
        descending = text.startswith("-")
        key = text.lstrip("-+")
        if key not in SORTS:
            raise unprocessable("sort", f"one of {', '.join(SORTS)} (a leading - sorts descending); got {text!r}")
        return cls(key, descending)

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.key


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def encode_cursor(sort: Sort, value: Any, seq: int) -> str:
    if sort.key == "seq" and not sort.descending:  # the list's cursor before sorts existed
        return pages.encode_cursor("s", seq)
    return pages.encode_cursor("k", json.dumps([sort.text, _encode(value), seq], separators=(",", ":")))


def decode_cursor(cursor: str | None, sort: Sort) -> tuple[Any, int] | None:
    """(the last row's sort value, its seq), or None for the first page; 422 for a foreign cursor."""
    if not cursor:
        return None
    try:
        kind, rest = pages.cursor_parts(cursor)
        if kind == "s" and sort.key == "seq" and not sort.descending:
            return int(rest), int(rest)
        if kind != "k":
            raise ValueError(cursor)
        sort_text, value, seq = json.loads(rest)
        if sort_text != sort.text:
            raise ValueError(cursor)
        column = SORTS[sort.key]
        python_type = column.type.python_type
        if python_type is dt.datetime:
            value = dt.datetime.fromisoformat(value)
        elif python_type is dt.date:
            value = dt.date.fromisoformat(value)
        else:
            value = int(value)
        return value, int(seq)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise refused("cursor", "not one this service returned for this sort") from None


def ordered(
    query: Select[Any], sort: Sort, after: tuple[Any, int] | None, columns: tuple[Any, Any] | None = None
) -> Select[Any]:
    """The query in the sort's order from after the cursor; ``columns``: (seq, sort column) to order by
    when they are not the settlements table's own (a materialized page, page())."""
    seq, column = columns or (Settlement.seq, SORTS[sort.key])
    if sort.key == "seq":
        if after is not None:
            query = query.where(seq < after[1] if sort.descending else seq > after[1])
        return query.order_by(seq.desc() if sort.descending else seq)
    if after is not None:
        key = tuple_(column, seq)
        bound = tuple_(literal(after[0], SORTS[sort.key].type), literal(after[1]))
        query = query.where(key < bound if sort.descending else key > bound)
    if sort.descending:
        return query.order_by(column.desc(), seq.desc())
    return query.order_by(column, seq)


# -- the service functions ---------------------------------------------------------


def page(
    session: Session, ctx: ServiceContext, principal: Principal, flt: SettlementFilter, *,
    sort: str | None = None, cursor: str | None = None, limit: int = 50,
) -> tuple[list[Settlement], str | None]:
    """One page of the filter's settlements (ORM rows) and the next page's cursor (None on the last)."""
    from settlement.service.reviews.models import ReviewStatus

    flt = check_filter(ctx, principal, flt)
    order = Sort.parse(sort)
    bounds = seq_bounds(session, ctx, flt)
    where = conditions(ctx, principal, flt, bounds)
    # two steps: the page's seqs from the queue's covering index (index-only, however many rows the
    # filter matches before the sort), then their ~1 kB rows, limit of them only
    column = SORTS[order.key]
    after = decode_cursor(cursor, order)
    if flt.discharged_from is not None or flt.discharged_to is not None:
        # a discharge range: every match first (through the discharged index), then the sort. Left to
        # itself the planner walks the seq order filtering by discharge date, expecting the first 51
        # matches early (a week in May: 332,000 rows read, 588 ms; PERFORMANCE.md §9)
        matching = (
            select(Settlement.seq.label("seq"), column.label("value")).where(*where)
            .cte("matching").prefix_with("MATERIALIZED")
        )
        keys = ordered(select(matching.c.seq, matching.c.value), order, after, (matching.c.seq, matching.c.value))
    elif _reviewed_only(principal, flt):  # the review status rows' own index, their carried sort column
        seq = ReviewStatus.settlement_seq
        value = seq if column.key == "seq" else getattr(ReviewStatus, column.key)
        keys = ordered(select(seq, value).where(*_reviewed_conditions(ctx, flt, bounds)), order, after, (seq, value))
    else:
        keys = ordered(select(Settlement.seq, column).where(*where), order, after)
    found = session.execute(keys.limit(limit + 1)).all()
    seqs = [int(row[0]) for row in found[:limit]]
    by_seq = {r.seq: r for r in session.scalars(select(Settlement).where(Settlement.seq.in_(seqs)))} if seqs else {}
    items = [by_seq[seq] for seq in seqs]
    if len(found) <= limit or not items:
        return items, None
    last = items[-1]
    return items, encode_cursor(order, getattr(last, column.key), last.seq)


def summarize(
    session: Session, ctx: ServiceContext, principal: Principal, flt: SettlementFilter
) -> dict[str, Any]:
    """Count and the sum of every amount the caller may see (fen) over the whole filter:
    ``{"count": n, "totals": {name: fen}}`` (names: visible_amounts; ``charity:<fund>`` the ledger's
    sum of each charity fund a fund-limited key holds, when it does not hold them all)."""
    flt = check_filter(ctx, principal, flt)
    names = visible_amounts(ctx, principal.funds)
    sums = [func.coalesce(func.sum(getattr(Settlement, f"{name}_fen")), 0) for name in names]
    bounds = seq_bounds(session, ctx, flt)
    if _reviewed_only(principal, flt):  # the review status rows' carried amounts (one range of their index)
        from settlement.service.reviews.models import ReviewStatus

        carried = [func.coalesce(func.sum(getattr(ReviewStatus, f"{name}_fen")), 0) for name in names]
        row = session.execute(select(func.count(), *carried).where(*_reviewed_conditions(ctx, flt, bounds))).one()
        return {"count": int(row[0]), "totals": {name: int(row[i + 1]) for i, name in enumerate(names)}}
    run = _block_run(session, ctx, principal, flt, bounds, names)
    # the rows' sums over the seq range, or over what is left of it on either side of the blocks' run
    ranges = [bounds] if run is None else [(bounds[0], run.low), (run.high, bounds[1])]
    count, totals = (0, dict.fromkeys(names, 0)) if run is None else (run.count, dict(run.totals))
    for part in ranges:
        row = session.execute(select(func.count(), *sums).where(*conditions(ctx, principal, flt, part))).one()
        count += int(row[0])
        for i, name in enumerate(names):
            totals[name] += int(row[i + 1])
    own = own_charity_funds(ctx, principal.funds)
    if own:
        le = LedgerEntry
        matching = select(Settlement.seq).where(*conditions(ctx, principal, flt, bounds))
        per_fund = dict(session.execute(
            select(le.fund, func.sum(le.amount_fen))
            .where(le.kind == "settled", le.fund.in_(own), le.settlement_seq.in_(matching))
            .group_by(le.fund)
        ).all())
        totals.update({f"charity:{fund}": int(per_fund.get(fund) or 0) for fund in own})
    return {"count": count, "totals": totals}


def _block_run(
    session: Session, ctx: ServiceContext, principal: Principal, flt: SettlementFilter, bounds: Bounds,
    names: tuple[str, ...],
) -> rollup.Run | None:
    """The stored blocks' run inside the filter (settlements.rollup), when the filter is settled dates
    only and the caller sees every settlement; None otherwise (the rows are summed)."""
    if principal.funds is not None or principal.district is not None:
        return None
    if replace(flt, settled_from=None, settled_to=None) != SettlementFilter():
        return None  # a condition the blocks cannot answer (a status, a hospital, a district, …)
    start = None if flt.settled_from is None else _day_start(ctx, flt.settled_from)
    end = None if flt.settled_to is None else _day_end(ctx, flt.settled_to)
    return rollup.totals(session, bounds, start, end, names)


BILL = ("total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible")
"""The bill's parts: every key that sees a settlement sees these (visibility.funds_view)."""
SHARE_FUND = {"patient_pays": "patient", "hospital_bears": "hospital"}
SHOWN = (*BILL, *SHARES)
"""AMOUNTS in the order they are shown and exported: the bill's parts, then the payers in paying order."""
assert sorted(SHOWN) == sorted(AMOUNTS)


def visible_amounts(ctx: ServiceContext, funds: frozenset[str] | None) -> tuple[str, ...]:
    """The amount columns (AMOUNTS' names) a key limited to ``funds`` sees summed (None: all):
    the bill's parts, the layers it holds, the patient's and hospital's shares if it holds them,
    and charity only when it holds every charity fund (else see own_charity_funds)."""
    if funds is None:
        return SHOWN
    charity_funds = set(ctx.tables.schedules.fund_ids)
    all_charity = bool(charity_funds) and charity_funds <= funds
    return tuple(
        name for name in SHOWN
        if name in BILL or SHARE_FUND.get(name, name) in funds or (name == "charity" and all_charity)
    )


def own_charity_funds(ctx: ServiceContext, funds: frozenset[str] | None) -> list[str]:
    """The charity funds a key limited to some but not all of them holds (their sums come from the
    ledger, one per fund); empty for every other key."""
    if funds is None:
        return []
    charity_funds = list(ctx.tables.schedules.fund_ids)
    own = [f for f in charity_funds if f in funds]
    return [] if len(own) == len(charity_funds) else own


def matching_seqs(
    session: Session, ctx: ServiceContext, principal: Principal, flt: SettlementFilter
) -> list[tuple[int, int]]:
    """(seq, total_fen) of every settlement of the filter, in seq order (bulk approval)."""
    flt = check_filter(ctx, principal, flt)
    where = conditions(ctx, principal, flt, seq_bounds(session, ctx, flt))
    query = select(Settlement.seq, Settlement.total_fen).where(*where)
    return [(int(a), int(b)) for a, b in session.execute(query.order_by(Settlement.seq))]


def review_facts(session: Session, seqs: list[int]) -> tuple[dict[int, str], dict[int, list[dict[str, Any]]]]:
    """Review status and flags of these settlements: ({seq: status}, {seq: [flag, …]})."""
    from settlement.service.reviews.models import ReviewStatus, SettlementFlag
    from settlement.service.reviews.rules import NAMES_ZH

    statuses: dict[int, str] = dict.fromkeys(seqs, "pending")
    flags: dict[int, list[dict[str, Any]]] = {seq: [] for seq in seqs}
    if not seqs:
        return statuses, flags
    for seq, status in session.execute(
        select(ReviewStatus.settlement_seq, ReviewStatus.status).where(ReviewStatus.settlement_seq.in_(seqs))
    ):
        statuses[seq] = status
    for f in session.scalars(
        select(SettlementFlag).where(SettlementFlag.settlement_seq.in_(seqs)).order_by(SettlementFlag.rule)
    ):
        flags[f.settlement_seq].append(
            {"rule": f.rule, "name": NAMES_ZH.get(f.rule, f.rule), "figures": f.figures, "threshold": f.threshold}
        )
    return statuses, flags


def search(
    session: Session, ctx: ServiceContext, principal: Principal, flt: SettlementFilter, *,
    sort: str | None = None, cursor: str | None = None, limit: int = 50, totals: bool = True,
) -> dict[str, Any]:
    """The JSON list: ``{"items", "next_cursor", "count", "totals"}`` (totals in yuan, over the whole filter)."""
    from settlement.service.settlements.service import summary_of
    from settlement.service.settlements.visibility import funds_view

    rows, next_cursor = page(session, ctx, principal, flt, sort=sort, cursor=cursor, limit=limit)
    statuses, flags = review_facts(session, [r.seq for r in rows])
    items = []
    for row in rows:
        body = funds_view(summary_of(row), principal.funds)
        body["review_status"] = statuses[row.seq]
        body["flags"] = flags[row.seq]
        items.append(body)
    out: dict[str, Any] = {"items": items, "next_cursor": next_cursor}
    if totals:
        summary = summarize(session, ctx, principal, flt)
        out["count"] = summary["count"]
        out["totals"] = {name: format_fen(v) for name, v in summary["totals"].items()}
    return out


# -- export ------------------------------------------------------------------------

SCHEME_ZH = {"resident": "城乡居民基本医疗保险", "employee": "城镇职工基本医疗保险"}
CATEGORY_ZH = {
    "none": "普通参保人员",
    "extreme_poverty": "特困供养人员",
    "subsistence_allowance": "最低生活保障对象",
    "registered_poor": "建档立卡贫困人口",
    "low_income": "低收入家庭成员",
    "illness_impoverished": "因病致贫家庭成员",
}
VISIT_ZH = {"inpatient": "住院", "outpatient": "普通门诊", "chronic_outpatient": "门诊慢特病"}
PATHWAY_ZH = {"standard": "按项目结算", "single_disease": "单病种定额付费"}
STATUS_ZH = {"settled": "已结算", "reversed": "已撤销"}
REVIEW_ZH = {"pending": "待审核", "approved": "审核通过", "queried": "存疑", "recovery": "追回"}
LABELS_ZH = {"scheme": SCHEME_ZH, "category": CATEGORY_ZH, "visit_type": VISIT_ZH, "status": STATUS_ZH,
             "pathway": PATHWAY_ZH}
"""The export's columns shown by their Chinese label (a value without one as it is)."""
AMOUNT_ZH = {
    "total": "医疗费总额",
    "fully_self_paid": "全自费金额",
    "over_limit": "超限价自付金额",
    "pre_self_paid": "先行自付金额",
    "in_scope": "符合政策范围金额",
    "deductible": "起付标准（本次）",
    "basic": "基本医疗保险统筹基金支付",
    "critical_illness": "大病保险支付",
    "medical_assistance": "医疗救助基金支付",
    "charity": "慈善救助支付",
    "emergency_relief": "疾病应急救助基金支付",
    "backstop": "政府兜底保障",
    "patient_pays": "个人负担",
    "hospital_bears": "医疗机构承担",
}


def export_columns(
    amounts: tuple[str, ...] = SHOWN, charity_funds: Mapping[str, str] | None = None
) -> list[Column]:
    """The export's columns: GLOSSARY.md's Chinese headers, money in yuan (numbers in .xlsx); the
    amounts the caller sees (visible_amounts), and one column per charity fund ({id: name}) of a key
    that holds some of them only."""
    return [
        Column("settlement_id", "结算单号", width=38),
        Column("claim_id", "医院单据号", width=18),
        Column("hospital_id", "医疗机构编码"),
        Column("person_id", "公民身份号码", width=21),
        Column("scheme", "险种", width=22),
        Column("category", "救助对象类别", width=18),
        Column("visit_type", "就诊类型"),
        Column("admitted", "入院日期", "date", width=12),
        Column("discharged", "出院日期", "date", width=12),
        Column("settled_at", "结算时间", "datetime", width=20),
        Column("status", "结算状态"),
        Column("pathway", "结算方式", width=16),
        Column("disease_group", "病种"),
        Column("review_status", "审核状态"),
        Column("flags", "预警", width=30),
        *(Column(name, AMOUNT_ZH.get(name, name), "money", width=16) for name in amounts),
        *(Column(f"charity:{fund}", f"{AMOUNT_ZH['charity']}（{name}）", "money", width=20)
          for fund, name in (charity_funds or {}).items()),
    ]


def charity_fund_names(ctx: ServiceContext, funds: list[str]) -> dict[str, str]:
    """{fund id: its name} for these charity funds (the name of the latest schedule version that has it)."""
    names: dict[str, str] = {}
    for version in ctx.tables.schedules.versions:
        for fund in version.charity_funds:
            if fund.id in funds:
                names[fund.id] = fund.name
    return {fund: names.get(fund, fund) for fund in funds}


def export_rows(
    ctx: ServiceContext, principal: Principal, flt: SettlementFilter, *, sort: str | None = None, chunk: int = 2000
) -> Iterator[Mapping[str, Any]]:
    """Every settlement of the filter as an export row, streamed (a server-side cursor on PostgreSQL):
    the rows are never all in memory. Opens its own session (a streamed response outlives the request's)."""
    from settlement.service.reviews.models import ReviewStatus, SettlementFlag
    from settlement.service.reviews.rules import NAMES_ZH

    flt = check_filter(ctx, principal, flt)
    order = Sort.parse(sort)
    s = Settlement
    tz = ctx.tz
    with ctx.db.read() as session:
        bounds = seq_bounds(session, ctx, flt)
    with ctx.db.engine.connect() as conn:
        agg = func.string_agg if conn.dialect.name == "postgresql" else func.group_concat
        flags = (
            select(agg(SettlementFlag.rule, literal(",")))
            .where(SettlementFlag.settlement_seq == s.seq)
            .scalar_subquery()
        )
        review = select(ReviewStatus.status).where(ReviewStatus.settlement_seq == s.seq).scalar_subquery()
        le = LedgerEntry
        own = [  # a fund-limited key's charity funds, one column each (it does not see the others')
            select(func.coalesce(func.sum(le.amount_fen), 0))
            .where(le.settlement_seq == s.seq, le.kind == "settled", le.fund == fund)
            .scalar_subquery().label(f"charity:{fund}")
            for fund in own_charity_funds(ctx, principal.funds)
        ]
        query: Any = select(
            s.seq, s.settlement_id, s.claim_id, s.hospital_id, s.person_id, s.scheme, s.category, s.visit_type,
            s.admitted, s.discharged, s.settled_at, s.status, s.pathway, s.disease_group,
            review.label("review_status"), flags.label("flags"),
            *(getattr(s, f"{name}_fen").label(name) for name in visible_amounts(ctx, principal.funds)),
            *own,
        ).where(*conditions(ctx, principal, flt, bounds))
        # Core rows on a server-side cursor (PostgreSQL), read in chunks: no ORM identity map, no row objects kept
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(ordered(query, order, None))
        keys = list(result.keys())
        names: dict[str, str] = {}
        for raw in result:
            data = dict(zip(keys, raw, strict=True))
            for key, labels in LABELS_ZH.items():
                data[key] = labels.get(data[key], data[key])
            data["review_status"] = REVIEW_ZH[data["review_status"] or "pending"]
            rules = data["flags"]
            if rules:
                if rules not in names:
                    names[rules] = "、".join(NAMES_ZH.get(r, r) for r in sorted(rules.split(",")))
                data["flags"] = names[rules]
            settled_at = data["settled_at"]
            if isinstance(settled_at, dt.datetime):
                if settled_at.tzinfo is None:  # SQLite keeps no zone: UTC
                    settled_at = settled_at.replace(tzinfo=dt.UTC)
                data["settled_at"] = settled_at.astimezone(tz)
            yield data


def export(
    ctx: ServiceContext, principal: Principal, flt: SettlementFilter, *, sort: str | None = None
) -> tuple[list[Column], Iterator[Mapping[str, Any]], str]:
    """(columns, rows, file name without extension) of the filter's export, for service.exports.file_response
    (or settlement.tabular directly). The filter and sort are checked now, before the first byte: a bad one
    is an error response, not a broken file."""
    check_filter(ctx, principal, flt)
    Sort.parse(sort)
    stamp = dt.datetime.now(ctx.tz).strftime("%Y%m%d-%H%M")
    columns = export_columns(
        visible_amounts(ctx, principal.funds), charity_fund_names(ctx, own_charity_funds(ctx, principal.funds))
    )
    return columns, export_rows(ctx, principal, flt, sort=sort), f"settlements-{stamp}"


__all__ = [
    "SORTS",
    "SettlementFilter",
    "Sort",
    "check_filter",
    "conditions",
    "export",
    "export_columns",
    "export_rows",
    "own_charity_funds",
    "page",
    "review_facts",
    "search",
    "summarize",
    "visible_amounts",
    "yuan_to_fen",
]
