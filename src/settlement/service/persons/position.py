"""A person's policy year against the caps: what each layer has paid and how much room is left.

For the person page: the accumulators of the year (as the counter keeps them)
beside the caps of the schedule version in force, for the person's scheme and
the category they hold on the day looked at. A null cap is unlimited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from settlement.schedules.types import VISIT_TYPES
from settlement.service.accumulators.repository import read_person_year
from settlement.service.auth.service import Principal
from settlement.service.errors import ServiceError

from .models import Person

if TYPE_CHECKING:
    from settlement.service.context import ServiceContext


@dataclass(frozen=True)
class CapRow:
    """One layer (one visit type of basic, one charity fund) in fen; cap None: unlimited."""

    layer: str
    """basic, critical_illness, medical_assistance or charity."""
    visit_type: str | None
    fund: str | None
    fund_name: str | None
    paid: int
    cap: int | None
    remaining: int | None
    """max(0, cap − paid); None when unlimited."""
    applies: bool
    """Whether this layer pays for the person's scheme and category at all."""


@dataclass(frozen=True)
class YearPosition:
    person_id: str
    policy_year: int
    on: dt.date
    """The day scheme, category and schedule version are taken on: today, or the year's last day."""
    schedule_version: str
    scheme: str
    category: str | None
    rows: list[CapRow]
    critical_base: int
    assistance_base: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def category_on(person: Person, day: dt.date, year: int) -> str | None:
    """The category in force on day; else the last one the person held during the year."""
    held = [p for p in person.periods if p.valid_from <= dt.date(year, 12, 31)
            and (p.valid_to is None or p.valid_to >= dt.date(year, 1, 1))]
    for period in held:
        if period.valid_from <= day and (period.valid_to is None or period.valid_to >= day):
            return period.category
    return held[-1].category if held else None


def _row(layer: str, paid: int, cap: int | None, applies: bool, *, visit_type: str | None = None,
         fund: str | None = None, fund_name: str | None = None) -> CapRow:
    remaining = None if cap is None else max(0, cap - paid)
    return CapRow(layer, visit_type, fund, fund_name, paid, cap, remaining, applies)


def year_position(
    session: Session, ctx: ServiceContext, person_id: str, year: int, principal: Principal
) -> YearPosition:
    """The person's year against the caps (404 if unknown or outside the principal's district)."""
    from .service import visible_person

    person = visible_person(session, principal, person_id)
    today = ctx.today()
    day = today if year == today.year else dt.date(year, 12, 31) if year < today.year else dt.date(year, 1, 1)
    index = ctx.tables.schedules.index_for(day)
    if index < 0:
        raise ServiceError(422, "no_schedule", f"no fee schedule is in force on {day} (policy year {year})")
    version = ctx.tables.schedules.versions[index]
    category = category_on(person, day, year)
    totals = read_person_year(session, person.person_id, year)
    scheme = person.scheme
    rows = []
    for vt in VISIT_TYPES:
        section = version.basic.sections.get((scheme, vt))
        rows.append(_row("basic", totals.basic_paid.get(vt, 0), section.annual_cap_fen if section else None,
                         section is not None, visit_type=vt))
    critical = version.critical_illness.sections.get(scheme) if version.critical_illness else None
    uncapped = bool(
        version.critical_illness and category
        and version.critical_illness.category_adjustments.get(category, None) is not None
        and version.critical_illness.category_adjustments[category].uncapped
    )
    rows.append(_row("critical_illness", totals.critical_paid,
                     None if critical is None or uncapped else critical.annual_cap_fen, critical is not None))
    assistance = version.medical_assistance
    entry = assistance.categories.get(category) if assistance is not None and category else None
    rows.append(_row("medical_assistance", totals.assistance_paid, entry.annual_cap_fen if entry else None,
                     entry is not None))
    listed = set()
    for fund in version.charity_funds:
        listed.add(fund.id)
        rows.append(_row("charity", totals.charity_paid.get(fund.id, 0), fund.annual_cap_per_person_fen,
                         category in fund.categories, fund=fund.id, fund_name=fund.name))
    for fund_id, paid in sorted(totals.charity_paid.items()):
        if fund_id not in listed and paid:  # paid under an earlier version of the year's schedules
            rows.append(_row("charity", paid, None, False, fund=fund_id))
    return YearPosition(
        person_id=person.person_id, policy_year=year, on=day, schedule_version=version.id, scheme=scheme,
        category=category, rows=rows, critical_base=totals.critical_base, assistance_base=totals.assistance_base,
    )
