"""Reading, locking and moving a person-year's totals (their columns: engine.totals)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from settlement.engine.state import PersonYearTotals, totals_from_values, totals_values
from settlement.engine.totals import COLUMNS
from settlement.service.db import insert_ignore

from .models import PERSON_YEAR, PersonCharity, PersonYear

TOTAL_COLUMNS = COLUMNS
"""The totals' columns of person_year_accumulators (engine.totals), the order of totals_values."""


def totals_from_row(values: Sequence[int] | None, charity: dict[str, int]) -> PersonYearTotals:
    """A row's TOTAL_COLUMNS (None: no row yet, zeros) and the person's charity rows as totals."""
    if values is None or values[0] is None:
        return PersonYearTotals(charity_paid=charity)
    return totals_from_values(values, charity)


def _totals(row: PersonYear | None, charity: dict[str, int]) -> PersonYearTotals:
    return totals_from_row(None if row is None else [getattr(row, c) for c in TOTAL_COLUMNS], charity)


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
        zeros = {"person_id": person_id, "policy_year": year, **dict.fromkeys(TOTAL_COLUMNS, 0)}
        insert_ignore(session, PERSON_YEAR, [zeros], ["person_id", "policy_year"])
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
        column: PERSON_YEAR.c[column] + sign * amount
        for column, amount in zip(TOTAL_COLUMNS, totals_values(delta), strict=True)
        if amount
    }
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


__all__ = [
    "TOTAL_COLUMNS",
    "add_to_person_year",
    "lock_person_year",
    "read_person_year",
    "totals_from_row",
    "totals_values",
]
