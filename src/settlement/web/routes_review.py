"""The review queue and a settlement's page."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from settlement.catalog import MessageError
from settlement.layers import PAYMENTS
from settlement.money import format_fen
from settlement.service.db import run_transaction
from settlement.service.deps import Ctx
from settlement.service.errors import ServiceError, invalid_request
from settlement.service.exports import file_response
from settlement.service.reviews import service as reviews
from settlement.service.settlements import query
from settlement.service.settlements import service as settlements
from settlement.service.settlements.visibility import funds_view

from . import charts, claimview
from .i18n import N_
from .labels import AMOUNT_LABELS, LAYER_LABELS, PAYERS
from .render import gettext_for, language_of, page
from .session import User, check_csrf, require_role

router = APIRouter(include_in_schema=False)

STAFF = ("reviewer", "admin")
"""Who opens the review and registry pages; insurers have pages of their own (routes_insurers)."""
REVIEWERS = ("reviewer", "admin")
FILTER_PARAMS = ("hospital_id", "person_id", "claim_id", "status", "scheme", "category", "visit_type", "pathway",
                 "disease_group", "from", "to", "settled_from", "settled_to", "district", "fund", "review_status",
                 "flag", "total_min", "total_max", "layer", "layer_min", "layer_max")
"""The queue's filters: the names of GET /v1/settlements' parameters (settlements.query), so a link works in both."""
QUEUE_PARAMS = (*FILTER_PARAMS, "sort", "cursor", "limit")
DATE_PARAMS = {"from": "discharged_from", "to": "discharged_to", "settled_from": "settled_from",
               "settled_to": "settled_to"}


def query_filters(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The page's query parameters, blanks dropped; an unknown one is an error naming it."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise invalid_request(f"unknown query parameter(s): {', '.join(unknown)}")
    return {k: v.strip() for k, v in request.query_params.items() if v.strip()}


def parse_date(filters: dict[str, str], name: str) -> dt.date | None:
    value = filters.get(name)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        problem = MessageError(N_("%(field)s: not a date (YYYY-MM-DD): %(value)s"), field=name, value=repr(value))
    raise invalid_request(str(problem)) from problem  # the error page says it in its language


def settlement_filter(filters: dict[str, str]) -> query.SettlementFilter:
    """The queue's filter from its URL parameters (the same checks as the JSON list's)."""
    values: dict[str, Any] = {}
    for name in FILTER_PARAMS:
        if name not in filters:
            continue
        if name in DATE_PARAMS:
            values[DATE_PARAMS[name]] = parse_date(filters, name)
        else:
            values[name] = filters[name]
    return query.make_filter(**values)


@router.get("/review/settlements")
def queue(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    filters = query_filters(request, QUEUE_PARAMS)
    limit = 50
    if "limit" in filters:
        if not filters["limit"].isdigit() or not 1 <= int(filters["limit"]) <= 500:
            raise invalid_request("limit: a whole number from 1 to 500")
        limit = int(filters["limit"])
    flt = settlement_filter(filters)
    principal = user.principal
    with ctx.db.read() as session:
        rows, next_cursor = query.page(session, ctx, principal, flt, sort=filters.get("sort"),
                                       cursor=filters.get("cursor"), limit=limit)
        statuses, flags = query.review_facts(session, [r.seq for r in rows])
        summary = query.summarize(session, ctx, principal, flt)
    funds = principal.funds
    items = [{**_queue_row(funds_view(settlements.summary_of(r), funds)), "review_status": statuses[r.seq],
              "flags": flags[r.seq]} for r in rows]
    totals = summary["totals"]
    # a fund-limited insurer sees the columns of its funds only (visibility.funds_view, query.visible_amounts)
    payers = [k for k in PAYERS if k in totals]
    own = query.charity_fund_names(ctx, query.own_charity_funds(ctx, funds))
    return page(request, "queue.html", user, rows=items, filters=filters, next_cursor=next_cursor,
                count=summary["count"], totals=totals, sort=filters.get("sort", ""), funds=_fund_choices(ctx, user),
                can_review=user.role in REVIEWERS, payers=payers, own_charity=own)


def _fund_choices(ctx: Any, user: Any) -> list[str]:
    from settlement.service.funds.service import fund_ids

    return [f for f in fund_ids(ctx) if user.principal.sees_fund(f)]


@router.get("/review/settlements/export.{fmt}")
def export(fmt: str, request: Request, ctx: Ctx, user: User) -> Response:
    """The queue's filter as a file: .xlsx (Chinese headers, money as numbers, 合计 row) or CSV with a BOM."""
    require_role(user, *STAFF)
    if fmt not in ("xlsx", "csv"):
        raise invalid_request("export: .xlsx or .csv")
    filters = query_filters(request, (*FILTER_PARAMS, "sort"))
    columns, rows, name = query.export(ctx, user.principal, settlement_filter(filters), sort=filters.get("sort"))
    return file_response("xlsx" if fmt == "xlsx" else "csv", columns, rows, name, sheet="结算单")


@router.get("/review/settlements/bulk-approve")
def bulk_approve_form(request: Request, ctx: Ctx, user: User) -> Response:
    """The confirmation of a bulk approval: the filter's count and totals, as they are now."""
    require_role(user, *REVIEWERS)
    filters = query_filters(request, (*FILTER_PARAMS, "sort"))
    with ctx.db.read() as session:
        summary = query.summarize(session, ctx, user.principal, settlement_filter(filters))
    return page(request, "bulk_approve.html", user, filters={k: v for k, v in filters.items() if k != "sort"},
                count=summary["count"], totals=summary["totals"], total_text=format_fen(summary["totals"]["total"]))


@router.post("/review/settlements/bulk-approve")
async def bulk_approve(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *REVIEWERS)
    form = await request.form()
    check_csrf(user, form)
    values = {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}
    filters = {k: v for k, v in values.items() if k in FILTER_PARAMS and v}
    flt = settlement_filter(filters)
    count = values.get("count", "")
    if not count.isdigit():
        raise invalid_request("count: the number of settlements confirmed")
    expected_total = query.yuan_to_fen("total", values.get("total")) or 0
    note = values.get("note") or None
    outcome = run_transaction(ctx.db.write, lambda session: reviews.bulk_approve(
        session, ctx, user.principal, flt, expected_count=int(count), expected_total=expected_total, note=note))
    del outcome
    return RedirectResponse("/review/settlements?" + urlencode({**filters, "review_status": "approved"}),
                            status_code=303)


@router.post("/review/settlements/{settlement_id}/reviews")
async def add_review(settlement_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    """The review panel's form: a decision (approve, query, recover) or a comment, with a note."""
    require_role(user, *REVIEWERS)
    form = await request.form()
    check_csrf(user, form)
    decision = str(form.get("decision") or "")
    typed = str(form.get("note") or "")
    note = typed.strip() or None
    try:
        run_transaction(ctx.db.write, lambda session: reviews.add_review(
            session, ctx, user.principal, settlement_id, decision, note))
    except ServiceError as exc:
        if exc.status != 422:
            raise
        # the form again, the message beside the field it names and what the user typed kept
        _ = gettext_for(language_of(request, user))
        field = str(next((e.get("field") for e in exc.errors or () if e.get("field")), "decision"))
        if field == "note":
            message = _(NOTE_PROBLEMS.get(exc.code, NOTE_TOO_LONG))
        else:
            message = _("Choose one of the decisions.")
        return settlement_view(request, ctx, user, settlement_id, status=422,
                               form={"note": typed, "decision": decision, "field": field, "message": message})
    return RedirectResponse(f"/review/settlements/{settlement_id}#review", status_code=303)


NOTE_PROBLEMS = {"note_required": N_("A query or a recovery needs a note saying why.")}
"""The review form's messages for the service's codes (catalog message ids, translated at render)."""
NOTE_TOO_LONG = N_("The note is too long (at most 2,000 characters).")
"""The note's other refusal (reviews.service.NOTE_MAX), a module constant so that Babel extracts it."""


def _fen(value: str) -> int:
    return claimview._fen(value)


def _queue_row(item: dict[str, Any]) -> dict[str, Any]:
    """A row of the queue, money in fen (None: an amount the caller's key does not see)."""
    payments = item["payments"]

    def fen(value: str | None) -> int | None:
        return None if value is None else claimview._fen(value)

    return {
        "settlement_id": item["settlement_id"],
        "claim_id": item["claim_id"],
        "hospital_id": item["hospital_id"],
        "person_id": item["person_id"],
        "category": item["category"],
        "status": item["status"],
        "policy_year": item["policy_year"],
        "settled_at": dt.datetime.fromisoformat(item["settled_at"].replace("Z", "+00:00")),
        "pathway": item["pathway"],
        "total": fen(item["amounts"]["total"]),
        **{k: fen(payments[k]) for k in PAYMENTS},
        "patient_pays": fen(item["patient_pays"]),
        "hospital_bears": fen(item["hospital_bears"]),
        **{f"charity:{fund}": fen(v) for fund, v in (item.get("charity_by_fund") or {}).items()},
    }


@router.get("/review/settlements/{settlement_id}")
def settlement_page(settlement_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    return settlement_view(request, ctx, user, settlement_id)


def settlement_view(
    request: Request, ctx: Any, user: Any, settlement_id: str, *, status: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    """The settlement's page; ``form``: the review form as sent (note, decision) with its problem."""
    _ = gettext_for(language_of(request, user))
    with ctx.db.read() as session:
        reviews.settlement_for(session, user.principal, settlement_id)  # 404 outside a reviewer's district
        view = claimview.load(session, ctx, user.principal, settlement_id)
        panel = reviews.review_panel(session, user.principal, settlement_id)
    row = view.row
    fen = {name: int(getattr(row, f"{name}_fen")) for name in (*AMOUNT_LABELS, *PAYERS)}
    charity_by_fund = {f: _fen(v) for f, v in view.body["charity_by_fund"].items()}
    steps: list[tuple[str, str, int]] = [
        (k, _(LAYER_LABELS[k]), fen[k]) for k in ("basic", "critical_illness", "medical_assistance")
    ]
    for fund, amount in charity_by_fund.items():
        steps.append((f"charity:{fund}", view.fund_names.get(fund, fund), amount))
    after_charity = PAYERS[PAYERS.index("charity") + 1:]  # emergency relief, backstop, patient, hospital
    steps += [(k, _(LAYER_LABELS[k]), fen[k]) for k in after_charity]
    parts = [(_(AMOUNT_LABELS[k]), fen[k]) for k in ("fully_self_paid", "over_limit", "pre_self_paid", "in_scope")]
    waterfall = charts.waterfall(steps, fen["total"], parts, _(AMOUNT_LABELS["total"]), _)
    cap_rows = [(cap_label(c.label, view.fund_names, _), c.before_fen, c.after_fen - c.before_fen,
                 c.remaining_fen or 0) for c in view.caps if c.cap_fen is not None]
    caps_chart = charts.cap_bars(cap_rows, _) if cap_rows else ""
    legend = [(label, amount, color) for (label, amount), color in zip(parts, charts.PART_COLORS, strict=True)]
    return page(request, "settlement.html", user, view=view, row=row, fen=fen, steps=steps, legend=legend,
                waterfall=waterfall, caps_chart=caps_chart, cap_label=lambda c: cap_label(c, view.fund_names, _),
                trace=[(step["layer"], translate_trace(step["text"], _)) for step in view.body["trace"]],
                charity_by_fund=charity_by_fund, panel=panel, can_review=user.role in REVIEWERS,
                status=status, form=form or {},
                reviewed=[{**r, "at": dt.datetime.fromisoformat(r["at"].replace("Z", "+00:00"))}
                          for r in panel["reviews"]])



def cap_label(key: str, fund_names: dict[str, str], _: Any) -> str:
    from .labels import VISIT_LABELS

    layer, _sep, detail = key.partition(":")
    if layer == "basic":
        return f"{_(LAYER_LABELS['basic'])} · {_(VISIT_LABELS.get(detail, detail))}"
    if layer == "charity":
        return fund_names.get(detail, detail)
    return str(_(LAYER_LABELS.get(layer, layer)))


def translate_trace(text: str, _: Any) -> str:
    from .trace_words import translate

    return translate(text, _)


__all__ = ["ServiceError", "router"]
