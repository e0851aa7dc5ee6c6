"""The registry's pages: find a person, a person's page (periods, this year's totals against caps, settlements)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from settlement.claims.person_id import normalize_person_id
from settlement.service.accumulators.repository import read_person_year
from settlement.service.deps import Ctx
from settlement.service.errors import not_found
from settlement.service.persons.repository import get_person
from settlement.service.settlements import service as settlements

from .render import page
from .routes_review import STAFF, _queue_row, query_filters
from .session import User, require_role

router = APIRouter(include_in_schema=False)


@router.get("/review/persons")
def persons(request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    filters = query_filters(request, ("q",))
    q = filters.get("q")
    if q:
        return RedirectResponse(f"/review/persons/{normalize_person_id(q)}", status_code=303)
    return page(request, "persons.html", user, filters=filters)


@router.get("/review/persons/{person_id}")
def person_page(person_id: str, request: Request, ctx: Ctx, user: User) -> Response:
    require_role(user, *STAFF)
    filters = query_filters(request, ("year",))
    pid = normalize_person_id(person_id)
    with ctx.db.read() as session:
        person = get_person(session, pid)
        if person is None:
            raise not_found(f"no person {pid} in the registry")
        found = settlements.search(
            session, user.principal, hospital_id=None, person_id=pid, status=None, category=None,
            disease_group=None, pathway=None, discharged_from=None, discharged_to=None, cursor=None, limit=200,
        )
        years = sorted({int(i["policy_year"]) for i in found["items"]})
        if filters.get("year", "").isdigit():
            year = int(filters["year"])
        else:  # the latest year the person was settled in, else this year
            year = years[-1] if years else dt.datetime.now(ctx.tz).year
        totals = read_person_year(session, pid, year)
    periods: list[dict[str, Any]] = [
        {"category": p.category, "valid_from": p.valid_from, "valid_to": p.valid_to} for p in person.periods
    ]
    return page(request, "person.html", user, person=person, periods=periods, year=year, years=years, totals=totals,
                rows=[_queue_row(i) for i in found["items"]])
