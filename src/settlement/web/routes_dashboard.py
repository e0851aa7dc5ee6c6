"""The dashboard: payments by month and layer, by category, by hospital level; pools; hospitals bearing most."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from settlement.catalog import MessageError
from settlement.schedules.models import EMERGENCY_RELIEF
from settlement.service.deps import Ctx
from settlement.service.errors import invalid_request
from settlement.service.funds.service import pool_status
from settlement.service.persons.schemas import check_district_prefix

from . import charts, dashboard
from .labels import CATEGORY_LABELS, LAYER_LABELS, LEVEL_LABELS
from .render import gettext_for, language_of, page
from .routes_review import STAFF, parse_date, query_filters
from .session import User, require_role

router = APIRouter(include_in_schema=False)
TOP_HOSPITALS = 10


def _long(rows: list[dict[str, Any]], key: str, label: Any, _: Any) -> list[dict[str, Any]]:
    """Wide rows (one column per payer) as long rows for a stacked chart."""
    out = []
    for r in rows:
        for order, payer in enumerate(dashboard.PAYER_COLUMNS):
            out.append({key: label(r[key]), "layer": _(LAYER_LABELS[payer]), "order": order, "fen": r[payer]})
    return out


@router.get("/review/dashboard")
def dashboard_page(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    _ = gettext_for(language_of(request, user))
    filters = query_filters(request, ("from", "to", "district", "year"))
    district = filters.get("district")
    if district is not None:
        try:
            check_district_prefix(district)
        except MessageError as exc:  # the error page says it in its language
            raise invalid_request(str(exc)) from exc
    flt = dashboard.DashboardFilter(parse_date(filters, "from"), parse_date(filters, "to"), district)
    principal = user.principal
    with ctx.db.read() as session:
        months = dashboard.by_month(session, flt, principal)
        categories = dashboard.by_category(session, flt, principal)
        hospitals = dashboard.by_hospital(session, flt, principal)
        levels = dashboard.hospital_levels(session, [h["hospital_id"] for h in hospitals])
        if filters.get("year", "").isdigit():
            year = int(filters["year"])
        elif flt.discharged_to is not None:
            year = flt.discharged_to.year
        else:
            year = dashboard.latest_year(session) or dt.datetime.now(ctx.tz).year
        pools = [pool_status(session, ctx, principal, fund, year) for fund in _funds_of_year(ctx, year)]
    by_level: dict[int, dict[str, Any]] = {}
    for h in hospitals:
        level = levels.get(h["hospital_id"], 0)
        into = by_level.setdefault(level, {"level": level, **dict.fromkeys(dashboard.PAYER_COLUMNS, 0)})
        for payer in dashboard.PAYER_COLUMNS:
            into[payer] += h[payer]
    level_rows = [by_level[k] for k in sorted(by_level)]
    layer_order = [_(LAYER_LABELS[p]) for p in dashboard.PAYER_COLUMNS]
    month_chart = charts.stacked_by(_long(months, "month", str, _), "month", _("Month of discharge"), _,
                                    layer_order, width=1180) if months else ""
    category_chart = charts.stacked_by(
        _long(categories, "category", lambda c: _(CATEGORY_LABELS.get(c) or str(c)), _), "category", "", _, layer_order,
        width=480, height=30 * len(categories), horizontal=True) if categories else ""
    level_chart = charts.stacked_by(
        _long(level_rows, "level", lambda v: _(LEVEL_LABELS.get(v, "?")), _), "level", "", _, layer_order,
        width=480, height=36 * len(level_rows), horizontal=True) if level_rows else ""
    pool_rows = [(str(p["name"]), _yuan_to_fen(str(p["used"])),
                  None if p["pool"] is None else _yuan_to_fen(str(p["pool"]))) for p in pools]
    pool_chart = charts.pool_bars(pool_rows, _) if pool_rows else ""
    pools = [{"name": name, "used": used, "pool": pool, "remaining": None if pool is None else max(0, pool - used)}
             for name, used, pool in pool_rows]
    top = sorted((h for h in hospitals if h["hospital_bears"] > 0), key=lambda h: -h["hospital_bears"])[:TOP_HOSPITALS]
    top_chart = charts.ranked_bars([(h["hospital_id"], h["hospital_bears"]) for h in top],
                                   _(LAYER_LABELS["hospital_bears"]), _) if top else ""
    totals = {p: sum(m[p] for m in months) for p in dashboard.PAYER_COLUMNS}
    count = sum(m["count"] for m in months)
    return page(request, "dashboard.html", user, filters=filters, months=months, month_chart=month_chart,
                category_chart=category_chart, level_chart=level_chart, pool_chart=pool_chart, pools=pools,
                top=top, top_chart=top_chart, year=year, totals=totals, count=count, levels=levels)


def _funds_of_year(ctx: Any, year: int) -> list[str]:
    schedules = ctx.tables.schedules
    index = schedules.index_for(dt.date(year, 12, 31))
    if index < 0:
        return []
    version = schedules.versions[index]
    relief = [EMERGENCY_RELIEF] if version.emergency_relief is not None else []
    return [f.id for f in version.charity_funds] + relief


def _yuan_to_fen(value: str) -> int:
    whole, _, frac = value.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])
