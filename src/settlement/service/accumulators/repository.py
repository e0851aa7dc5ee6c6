"""Reading, locking and moving a person-year's totals."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from settlement.engine.state import PersonYearTotals
from settlement.schedules.types import VISIT_TYPES
from settlement.service.db import insert_ignore

from .models import PersonCharity, PersonYear

BASIC_COLUMNS = {vt: f"basic_paid_{vt}" for vt in VISIT_TYPES}


def _totals(row: PersonYear | None, charity: dict[str, int]) -> PersonYearTotals:
    if row is None:
        return PersonYearTotals(charity_paid=charity)
    return PersonYearTotals(
        basic_paid={vt: int(getattr(row, col)) for vt, col in BASIC_COLUMNS.items()},
        critical_base=row.critical_base,
        critical_paid=row.critical_paid,
        assistance_base=row.assistance_base,
        assistance_paid=row.assistance_paid,
        charity_paid=charity,
    )


def _charity(session: Session, person_id: str, year: int) -> dict[str, int]:
    rows = session.execute(
        select(PersonCharity.fund_id, PersonCharity.paid).where(
            PersonCharity.person_id == person_id, PersonCharity.policy_year == year
        )
    )
    return {fund: int(paid) for fund, paid in rows}


def read_person_year(session: Session, person_id: str, year: int) -> PersonYearTotals:
    """The totals as committed now, without a lock (previews and reads); zeros for a new year."""
    row = session.get(PersonYear, (person_id, year))
    return _totals(row, _charity(session, person_id, year))


def lock_person_year(session: Session, person_id: str, year: int) -> PersonYearTotals:
    """Creates the person-year row if absent and locks it FOR UPDATE until commit.

    This lock is what makes one person's settlements serialize (SPEC §9): the
    first lock a settle or a reversal takes after the settlement row.
    """
    exists = session.scalar(
        select(PersonYear.policy_year).where(
            PersonYear.person_id == person_id, PersonYear.policy_year == year
        )
    )
    if exists is None:
        insert_ignore(
            session,
            PersonYear.__table__,  # type: ignore[arg-type]
            [
                {
                    "person_id": person_id,
                    "policy_year": year,
                    **dict.fromkeys(
                        [
                            *BASIC_COLUMNS.values(),
                            "critical_base",
                            "critical_paid",
                            "assistance_base",
                            "assistance_paid",
                        ],
                        0,
                    ),
                }
            ],
            ["person_id", "policy_year"],
        )
    row = session.scalars(
        select(PersonYear)
        .where(PersonYear.person_id == person_id, PersonYear.policy_year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return _totals(row, _charity(session, person_id, year))


def add_to_person_year(
    session: Session,
    person_id: str,
    year: int,
    delta: PersonYearTotals,
    sign: int,
    now: dt.datetime,
) -> None:
    """Adds sign × delta to the locked person-year row and its charity rows."""
    values = {
        BASIC_COLUMNS[vt]: getattr(PersonYear, BASIC_COLUMNS[vt])
        + sign * delta.basic_paid.get(vt, 0)
        for vt in VISIT_TYPES
        if delta.basic_paid.get(vt, 0)
    }
    for name in ("critical_base", "critical_paid", "assistance_base", "assistance_paid"):
        amount = getattr(delta, name)
        if amount:
            values[name] = getattr(PersonYear, name) + sign * amount
    session.execute(
        update(PersonYear)
        .where(PersonYear.person_id == person_id, PersonYear.policy_year == year)
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    changed = {fund: amount for fund, amount in sorted(delta.charity_paid.items()) if amount}
    if not changed:
        return
    insert_ignore(
        session,
        PersonCharity.__table__,  # type: ignore[arg-type]
        [{"person_id": person_id, "policy_year": year, "fund_id": f, "paid": 0} for f in changed],
        ["person_id", "policy_year", "fund_id"],
    )
    for fund, amount in changed.items():
        session.execute(
            update(PersonCharity)
            .where(
                PersonCharity.person_id == person_id,
                PersonCharity.policy_year == year,
                PersonCharity.fund_id == fund,
            )
            .values(paid=PersonCharity.paid + sign * amount)
            .execution_options(synchronize_session=False)
        )
