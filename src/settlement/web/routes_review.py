"""The review queue and a settlement's page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from settlement.service.deps import Ctx
from settlement.service.errors import ServiceError, invalid_request
from settlement.service.settlements import service as settlements

from . import charts, claimview
from .labels import AMOUNT_LABELS, CATEGORY_LABELS, LAYER_LABELS, PAYERS
from .render import gettext_for, language_of, page
from .session import User, require_role

router = APIRouter(include_in_schema=False)

STAFF = ("reviewer", "admin", "insurer")
QUEUE_FILTERS = ("hospital_id", "person_id", "status", "category", "disease_group", "pathway", "from", "to",
                 "cursor", "limit")


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
        raise invalid_request(f"{name}: not a date (YYYY-MM-DD): {value!r}") from None


def parse_choice(filters: dict[str, str], name: str, choices: Any) -> str | None:
    value = filters.get(name)
    if value is not None and value not in choices:
        raise invalid_request(f"{name}: must be one of {', '.join(choices)}")
    return value


@router.get("/review/settlements")
def queue(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    filters = query_filters(request, QUEUE_FILTERS)
    limit = 50
    if "limit" in filters:
        if not filters["limit"].isdigit() or not 1 <= int(filters["limit"]) <= 500:
            raise invalid_request("limit: a whole number from 1 to 500")
        limit = int(filters["limit"])
    with ctx.db.read() as session:
        found = settlements.search(
            session, user.principal,
            hospital_id=filters.get("hospital_id"),
            person_id=filters.get("person_id"),
            status=parse_choice(filters, "status", ("settled", "reversed")),
            category=parse_choice(filters, "category", tuple(CATEGORY_LABELS)),
            disease_group=filters.get("disease_group"),
            pathway=parse_choice(filters, "pathway", ("standard", "single_disease")),
            discharged_from=parse_date(filters, "from"),
            discharged_to=parse_date(filters, "to"),
            cursor=filters.get("cursor"),
            limit=limit,
        )
    rows = [_queue_row(item) for item in found["items"]]
    page_totals = {key: sum(r[key] for r in rows) for key in ("total", *PAYERS)}
    return page(request, "queue.html", user, rows=rows, filters=filters, next_cursor=found["next_cursor"],
                page_totals=page_totals)


def _fen(value: str) -> int:
    return claimview._fen(value)


def _queue_row(item: dict[str, Any]) -> dict[str, Any]:
    payments = item["payments"]
    return {
        "settlement_id": item["settlement_id"],
        "claim_id": item["claim_id"],
        "hospital_id": item["hospital_id"],
        "person_id": item["person_id"],
        "category": item["category"],
        "status": item["status"],
        "settled_at": dt.datetime.fromisoformat(item["settled_at"].replace("Z", "+00:00")),
        "pathway": item["pathway"],
        "total": _fen(item["amounts"]["total"]),
        **{k: _fen(payments[k]) for k in ("basic", "critical_illness", "medical_assistance", "charity", "backstop")},
        "patient_pays": _fen(item["patient_pays"]),
        "hospital_bears": _fen(item["hospital_bears"]),
    }


@router.get("/review/settlements/{settlement_id}")
def settlement_page(settlement_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    _ = gettext_for(language_of(request, user))
    with ctx.db.read() as session:
        view = claimview.load(session, ctx, user.principal, settlement_id)
    row = view.row
    fen = {name: int(getattr(row, f"{name}_fen")) for name in (*AMOUNT_LABELS, *PAYERS)}
    charity_by_fund = {f: _fen(v) for f, v in view.body["charity_by_fund"].items()}
    steps: list[tuple[str, str, int]] = [
        (k, _(LAYER_LABELS[k]), fen[k]) for k in ("basic", "critical_illness", "medical_assistance")
    ]
    for fund, amount in charity_by_fund.items():
        steps.append((f"charity:{fund}", view.fund_names.get(fund, fund), amount))
    steps += [(k, _(LAYER_LABELS[k]), fen[k]) for k in ("backstop", "patient_pays", "hospital_bears")]
    parts = [(_(AMOUNT_LABELS[k]), fen[k]) for k in ("fully_self_paid", "over_limit", "pre_self_paid", "in_scope")]
    waterfall = charts.waterfall(steps, fen["total"], parts, _(AMOUNT_LABELS["total"]), _)
    cap_rows = [(cap_label(c.label, view.fund_names, _), c.before_fen, c.after_fen - c.before_fen,
                 c.remaining_fen or 0) for c in view.caps if c.cap_fen is not None]
    caps_chart = charts.cap_bars(cap_rows, _) if cap_rows else ""
    legend = [(label, amount, color) for (label, amount), color in zip(parts, charts.PART_COLORS, strict=True)]
    return page(request, "settlement.html", user, view=view, row=row, fen=fen, steps=steps, legend=legend,
                waterfall=waterfall, caps_chart=caps_chart, cap_label=lambda c: cap_label(c, view.fund_names, _),
                trace=[(step["layer"], translate_trace(step["text"], _)) for step in view.body["trace"]],
                charity_by_fund=charity_by_fund)


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
