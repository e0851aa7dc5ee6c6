"""Hospital registry data access."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.service.db import insert_ignore

from .models import Hospital, HospitalChange


def get_hospital(session: Session, hospital_id: str) -> Hospital | None:
    return session.get(Hospital, hospital_id)


def level_of(session: Session, hospital_id: str) -> int | None:
    """The registered level (the counter's portable path; PostgreSQL reads it in the counter's one read)."""
    return session.scalar(select(Hospital.level).where(Hospital.hospital_id == hospital_id))


def lock_hospital(
    session: Session, hospital_id: str, defaults: dict[str, object], now: dt.datetime
) -> tuple[Hospital, bool]:
    """The hospital's row, created from ``defaults`` if absent, locked FOR UPDATE; (row, created).

    The lock serializes writers of one hospital, so each history record's ``before`` is what the
    previous one wrote; settles do not take it (they only read the level)."""
    exists = session.scalar(select(Hospital.hospital_id).where(Hospital.hospital_id == hospital_id))
    if exists is None:
        insert_ignore(
            session,
            Hospital.__table__,  # type: ignore[arg-type]
            [{"hospital_id": hospital_id, **defaults, "created_at": now, "updated_at": now}],
            ["hospital_id"],
        )
    row = session.scalars(
        select(Hospital)
        .where(Hospital.hospital_id == hospital_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return row, exists is None


def list_hospitals(session: Session) -> list[Hospital]:
    return list(session.scalars(select(Hospital).order_by(Hospital.hospital_id)))


def history(session: Session, hospital_id: str) -> list[HospitalChange]:
    return list(
        session.scalars(
            select(HospitalChange).where(HospitalChange.hospital_id == hospital_id).order_by(HospitalChange.id)
        )
    )
