"""Registry data access."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload

from settlement.service.db import pg_connection, pg_execute, upsert
from settlement.service.errors import forbidden, not_found

from .models import Person, PersonCategory, PersonHistory


def get_person(session: Session, person_id: str) -> Person | None:
    return session.scalars(
        select(Person).where(Person.person_id == person_id).options(selectinload(Person.periods))
    ).one_or_none()


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """INSERT … ON CONFLICT DO NOTHING of person rows; the ids this statement created.

    RETURNING says which rows were new even when a concurrent writer created
    the same person first (its insert makes ours wait, then do nothing).
    """
    if not rows:
        return set()
    table = Person.__table__
    assert isinstance(table, Table)
    stmt = upsert(session, table).on_conflict_do_nothing(index_elements=["person_id"]).returning(table.c.person_id)
    # the rows as parameters ("insertmanyvalues": compiled once, cached, sent in batches), not .values(rows),
    # whose statement of thousands of bind parameters would be compiled anew for every call
    return set(session.scalars(stmt, rows))


def lock_person(
    session: Session, person_id: str, scheme: str, now: dt.datetime
) -> tuple[Person, bool]:
    """The person's row, created if absent, locked FOR NO KEY UPDATE; (person, created).

    The lock serializes writers of one person's entry (so the no-overlap check
    holds and a history record's ``before`` is the entry it replaced) without
    blocking settlements, whose foreign keys take only KEY SHARE locks.
    """
    exists = session.scalar(select(Person.person_id).where(Person.person_id == person_id))
    row = {"person_id": person_id, "scheme": scheme, "created_at": now, "updated_at": now}
    created = exists is None and bool(_insert_new(session, [row]))
    person = session.scalars(
        select(Person)
        .where(Person.person_id == person_id)
        .with_for_update(key_share=True)
        .options(selectinload(Person.periods))
        .execution_options(populate_existing=True)
    ).one()
    return person, created


Period = tuple[str, dt.date, dt.date | None]


@dataclass(frozen=True)
class Entry:
    """A person's whole registry entry as an import states it.

    ``name``/``district`` of KEEP leave the stored value (the file has no such column).
    """

    scheme: str
    periods: list[Period]
    name: str | object | None = None
    district: str | object | None = None


KEEP = object()


def _given(value: str | object | None) -> str | None:
    """An entry's name or district as stored for a new person (KEEP: nothing to keep, null)."""
    return None if value is KEEP else value  # type: ignore[return-value]


def snapshot(scheme: str, name: str | None, district: str | None, periods: list[Period]) -> dict[str, Any]:
    """A history snapshot: the entry as JSON (dates ISO, periods by valid_from)."""
    return {
        "scheme": scheme,
        "name": name,
        "district": district,
        "categories": [
            {"category": c, "valid_from": f.isoformat(), "valid_to": None if t is None else t.isoformat()}
            for c, f, t in sorted(periods, key=lambda p: p[1])
        ],
    }


def person_snapshot(person: Person) -> dict[str, Any]:
    return snapshot(
        person.scheme, person.name, person.district,
        [(p.category, p.valid_from, p.valid_to) for p in person.periods],
    )


def stored_snapshots(session: Session, ids: list[str], lock: bool) -> dict[str, dict[str, Any]]:
    """The current entries of these persons (absent ones are left out), by id.

    With lock, the rows are locked FOR NO KEY UPDATE in person_id order first
    (lock_person's lock; the fixed order keeps two imports from deadlocking).
    """
    query = (
        select(Person.person_id, Person.scheme, Person.name, Person.district)
        .where(Person.person_id.in_(ids))
        .order_by(Person.person_id)
    )
    if lock:
        query = query.with_for_update(key_share=True)
    persons = {row[0]: row for row in session.execute(query)}
    periods: dict[str, list[Period]] = {pid: [] for pid in persons}
    for pid, category, valid_from, valid_to in session.execute(
        select(
            PersonCategory.person_id, PersonCategory.category, PersonCategory.valid_from,
            PersonCategory.valid_to,
        ).where(PersonCategory.person_id.in_(list(persons)))
    ):
        periods[pid].append((category, valid_from, valid_to))
    return {pid: snapshot(row[1], row[2], row[3], periods[pid]) for pid, row in persons.items()}


def add_history(
    session: Session, rows: list[tuple[str, dict[str, Any] | None, dict[str, Any]]],
    actor: str, source: str, now: dt.datetime,
) -> None:
    """Appends history records (person_id, before, after), in the caller's transaction."""
    if rows:
        session.execute(
            insert(PersonHistory),
            [
                {"person_id": pid, "changed_at": now, "actor": actor, "source": source,
                 "before": before, "after": after}
                for pid, before, after in rows
            ],
        )


def replace_many(
    session: Session, entries: dict[str, Entry], key_id: str | None, actor: str, now: dt.datetime,
    chunk: int = 5000, allowed: Callable[[str | None], bool] | None = None,
) -> tuple[int, int]:
    """Replaces the entries of many persons with set-based statements (import); (changed, new).

    Per chunk, in person_id order: absent persons are created (their history
    ``before`` is null), every row is locked FOR NO KEY UPDATE as lock_person
    locks one (the same lock protects the no-overlap rule and the history's
    ``before``), the stored entries are read under that lock, and only the
    persons whose entry changes are written, each with a history record.
    ``allowed`` (a district scope) is checked on the locked rows: 404 for a
    stored person outside it, 403 for an entry that would leave it.
    """
    table = Person.__table__
    assert isinstance(table, Table)
    ids = sorted(entries)
    changed = new = 0
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        created = _insert_new(  # absent persons are inserted whole: only the others need an UPDATE
            session,
            [
                {"person_id": p, "scheme": entries[p].scheme, "created_at": now, "updated_at": now,
                 "updated_by": key_id, "name": _given(entries[p].name), "district": _given(entries[p].district)}
                for p in part
            ],
        )
        stored = stored_snapshots(session, part, lock=True)
        writes: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
        for pid in part:
            entry = entries[pid]
            before = None if pid in created else stored[pid]
            old = stored[pid]
            name = old["name"] if entry.name is KEEP else entry.name
            district = old["district"] if entry.district is KEEP else entry.district
            if allowed is not None and before is not None and not allowed(old["district"]):
                raise not_found(f"person {pid} is not in the registry")
            if allowed is not None and not allowed(district):  # type: ignore[arg-type]
                raise forbidden(f"person {pid}: district {district or '(none)'} is outside the key's district")
            after = snapshot(entry.scheme, name, district, entry.periods)  # type: ignore[arg-type]
            if before != after:
                writes.append((pid, before, after))
        if not writes:
            continue
        written = [w[0] for w in writes]
        updates = [w for w in writes if w[0] not in created]
        if updates:
            session.execute(
                update(table)
                .where(table.c.person_id == bindparam("pid"))
                .values(
                    scheme=bindparam("scheme"), name=bindparam("name"), district=bindparam("district"),
                    updated_at=bindparam("now"), updated_by=bindparam("key"),
                ),
                [
                    {"pid": pid, "scheme": after["scheme"], "name": after["name"], "district": after["district"],
                     "now": now, "key": key_id}
                    for pid, _, after in updates
                ],
            )
            session.execute(delete(PersonCategory).where(PersonCategory.person_id.in_([w[0] for w in updates])))
        periods = [
            {"person_id": p, "category": c, "valid_from": f, "valid_to": t}
            for p in written
            for c, f, t in sorted(entries[p].periods, key=lambda period: period[1])
        ]
        if periods:
            session.execute(insert(PersonCategory), periods)
        add_history(session, writes, actor, "import", now)
        changed += len(writes)
        new += sum(1 for w in writes if w[1] is None)
    session.expire_all()
    return changed, new


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
