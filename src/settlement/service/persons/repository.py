"""Registry data access."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, text, update
from sqlalchemy.orm import Session, selectinload

from settlement.service.db import insert_ignore, pg_connection, pg_execute

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


def replace_many(
    session: Session, entries: dict[str, tuple[str, list[tuple[str, dt.date, dt.date | None]]]],
    key_id: str | None, now: dt.datetime, chunk: int = 1000,
) -> None:
    """Replaces the scheme and periods of many persons with set-based statements (CSV import).

    Person rows are created if absent and locked FOR NO KEY UPDATE in person_id
    order, chunk by chunk, as lock_person does for one: the same lock protects
    the no-overlap rule, and a fixed order keeps two imports from deadlocking.
    """
    table = Person.__table__
    assert isinstance(table, Table)
    ids = sorted(entries)
    if session.get_bind().dialect.name == "postgresql":
        _replace_many_postgres(session, entries, ids, key_id, now)
        return
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        insert_ignore(
            session,
            table,
            [{"person_id": p, "scheme": entries[p][0], "created_at": now, "updated_at": now} for p in part],
            ["person_id"],
        )
        session.execute(
            select(Person.person_id).where(Person.person_id.in_(part)).order_by(Person.person_id)
            .with_for_update(key_share=True)
        ).all()
        session.execute(
            update(table)
            .where(table.c.person_id == bindparam("pid"))
            .values(scheme=bindparam("scheme"), updated_at=bindparam("now"), updated_by=bindparam("key")),
            [{"pid": p, "scheme": entries[p][0], "now": now, "key": key_id} for p in part],
        )
        session.execute(delete(PersonCategory).where(PersonCategory.person_id.in_(part)))
        periods = [
            {"person_id": p, "category": c, "valid_from": f, "valid_to": t}
            for p in part
            for c, f, t in sorted(entries[p][1], key=lambda period: period[1])
        ]
        if periods:
            session.execute(insert(PersonCategory), periods)
    session.expire_all()


_UPSERT_PERSONS = text(
    """
    INSERT INTO persons (person_id, scheme, created_at, updated_at, updated_by)
    SELECT u.person_id, u.scheme, :now, :now, :key
    FROM unnest(CAST(:ids AS varchar[]), CAST(:schemes AS varchar[])) AS u(person_id, scheme)
    ORDER BY u.person_id
    ON CONFLICT (person_id) DO UPDATE
    SET scheme = EXCLUDED.scheme, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
    """
)
_DELETE_PERIODS = text("DELETE FROM person_categories WHERE person_id = ANY(CAST(:ids AS varchar[]))")
_INSERT_PERIODS = text(
    """
    INSERT INTO person_categories (person_id, category, valid_from, valid_to)
    SELECT * FROM unnest(CAST(:ids AS varchar[]), CAST(:categories AS varchar[]),
                         CAST(:froms AS date[]), CAST(:tos AS date[]))
    """
)


def _replace_many_postgres(
    session: Session, entries: dict[str, tuple[str, list[tuple[str, dt.date, dt.date | None]]]],
    ids: list[str], key_id: str | None, now: dt.datetime, chunk: int = 10_000,
) -> None:
    """The PostgreSQL form of replace_many: three array statements per chunk.

    The upsert takes each person row's lock (FOR NO KEY UPDATE: no key column
    changes) in person_id order, the same lock lock_person takes.
    """
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        session.execute(
            _UPSERT_PERSONS, {"ids": part, "schemes": [entries[p][0] for p in part], "now": now, "key": key_id}
        )
        session.execute(_DELETE_PERIODS, {"ids": part})
        periods = [(p, c, f, t) for p in part for c, f, t in entries[p][1]]
        session.execute(
            _INSERT_PERIODS,
            {
                "ids": [p[0] for p in periods],
                "categories": [p[1] for p in periods],
                "froms": [p[2] for p in periods],
                "tos": [p[3] for p in periods],
            },
        )
    session.expire_all()


IDENTITY_SQL = (
    "SELECT p.scheme, c.category FROM persons p LEFT JOIN person_categories c"
    " ON c.person_id = p.person_id AND c.valid_from <= %(day)s AND (c.valid_to IS NULL OR c.valid_to >= %(day)s)"
    " WHERE p.person_id = %(pid)s LIMIT 1"
)


def identity_on(session: Session, person_id: str, day: dt.date) -> tuple[str, str | None] | None:
    """(scheme, category of the period covering day, or None); None when the person is unknown."""
    pg = pg_connection(session)
    if pg is not None:  # the same query, without the ORM's per-statement cost
        found = pg_execute(pg, IDENTITY_SQL, {"day": day, "pid": person_id}).fetchone()
        return None if found is None else (found[0], found[1])
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
