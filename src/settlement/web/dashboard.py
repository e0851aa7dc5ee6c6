"""The dashboard's figures, summed by the database over the settlements still in force (status settled).

Money is summed in fen by SQL (SUM over BIGINT columns); nothing here
computes a payment. Filters: discharge dates and the principal's district scope.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, extract, func, select
from sqlalchemy.orm import Session

from settlement.service.auth.service import Principal
from settlement.service.settlements.models import Settlement

from .labels import PAYERS

PAYER_COLUMNS = PAYERS
"""Who pays, in paying order (the pages' one list, labels.PAYERS): the sums each figure stacks."""


@dataclass(frozen=True)
class DashboardFilter:
    discharged_from: dt.date | None = None
    discharged_to: dt.date | None = None
    district: str | None = None


def _sums() -> list[Any]:
    return [func.coalesce(func.sum(getattr(Settlement, f"{c}_fen")), 0).label(c) for c in PAYER_COLUMNS]


def _filtered(query: Select[Any], flt: DashboardFilter, principal: Principal) -> Select[Any]:
    query = query.where(Settlement.status == "settled")
    if flt.discharged_from is not None:
        query = query.where(Settlement.discharged >= flt.discharged_from)
    if flt.discharged_to is not None:
        query = query.where(Settlement.discharged <= flt.discharged_to)
    return scope_district(query, flt.district, principal)


def scope_district(query: Select[Any], district: str | None, principal: Principal) -> Select[Any]:
    """Only the settlements of persons in the district (and in the principal's own district scope)."""
    prefixes = [p for p in (principal.district, district) if p]
    if not prefixes:
        return query
    from settlement.service.persons.models import Person

    district_column = getattr(Person, "district", None)
    if district_column is None:  # the registry has no districts yet: nobody is in a district
        return query.where(Settlement.seq < 0)
    query = query.join(Person, Person.person_id == Settlement.person_id)
    for prefix in prefixes:
        query = query.where(district_column.like(f"{prefix}%"))
    return query


def by_month(session: Session, flt: DashboardFilter, principal: Principal) -> list[dict[str, Any]]:
    year = extract("year", Settlement.discharged)
    month = extract("month", Settlement.discharged)
    query = _filtered(select(year.label("y"), month.label("m"), func.count().label("n"), *_sums()), flt, principal)
    rows = session.execute(query.group_by(year, month).order_by(year, month)).mappings()
    return [{"month": f"{int(r['y'])}-{int(r['m']):02d}", "count": r["n"], **{c: int(r[c]) for c in PAYER_COLUMNS}}
            for r in rows]


def by_category(session: Session, flt: DashboardFilter, principal: Principal) -> list[dict[str, Any]]:
    query = _filtered(select(Settlement.category, func.count().label("n"), *_sums()), flt, principal)
    rows = session.execute(query.group_by(Settlement.category).order_by(Settlement.category)).mappings()
    return [{"category": r["category"], "count": r["n"], **{c: int(r[c]) for c in PAYER_COLUMNS}} for r in rows]


def by_hospital(session: Session, flt: DashboardFilter, principal: Principal) -> list[dict[str, Any]]:
    query = _filtered(select(Settlement.hospital_id, func.count().label("n"), *_sums()), flt, principal)
    rows = session.execute(query.group_by(Settlement.hospital_id)).mappings()
    return [{"hospital_id": r["hospital_id"], "count": r["n"], **{c: int(r[c]) for c in PAYER_COLUMNS}}
            for r in rows]


def hospital_levels(session: Session, hospital_ids: list[str]) -> dict[str, int]:
    """Each hospital's level as its latest settled claim states it (one row read per hospital)."""
    levels: dict[str, int] = {}
    for hospital_id in hospital_ids:
        body = session.scalar(
            select(Settlement.request_body).where(Settlement.hospital_id == hospital_id)
            .order_by(Settlement.seq.desc()).limit(1)
        )
        if body:
            level = orjson.loads(body).get("hospital", {}).get("level")
            if isinstance(level, int):
                levels[hospital_id] = level
    return levels


def latest_year(session: Session) -> int | None:
    return session.scalar(select(func.max(Settlement.policy_year)))
