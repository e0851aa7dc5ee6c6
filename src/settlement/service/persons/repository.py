"""Registry data access."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from settlement.service.db import insert_ignore

from .models import Person, PersonCategory


def get_person(session: Session, person_id: str) -> Person | None:
    return session.scalars(
        select(Person).where(Person.person_id == person_id).options(selectinload(Person.periods))
    ).one_or_none()


def lock_person(
    session: Session, person_id: str, scheme: str, now: dt.datetime
) -> tuple[Person, bool]:
    """The person's row, created if absent, locked FOR NO KEY UPDATE.

    The lock serializes writers of one person's periods (so the no-overlap
    check holds) without blocking settlements, whose foreign keys take only
    KEY SHARE locks.
    """
    exists = session.scalar(select(Person.person_id).where(Person.person_id == person_id))
    if exists is None:
        insert_ignore(
            session,
            Person.__table__,  # type: ignore[arg-type]
            [{"person_id": person_id, "scheme": scheme, "created_at": now, "updated_at": now}],
            ["person_id"],
        )
    person = session.scalars(
        select(Person)
        .where(Person.person_id == person_id)
        .with_for_update(key_share=True)
        .options(selectinload(Person.periods))
        .execution_options(populate_existing=True)
    ).one()
    return person, exists is None


def identity_on(session: Session, person_id: str, day: dt.date) -> tuple[str, str | None] | None:
    """(scheme, category of the period covering day, or None); None when the person is unknown."""
    row = session.execute(
        select(Person.scheme, PersonCategory.category)
        .select_from(Person)
        .outerjoin(
            PersonCategory,
            and_(
                PersonCategory.person_id == Person.person_id,
                PersonCategory.valid_from <= day,
                or_(PersonCategory.valid_to.is_(None), PersonCategory.valid_to >= day),
            ),
        )
        .where(Person.person_id == person_id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return row[0], row[1]
