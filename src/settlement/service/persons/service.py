"""Registry rules: valid ids, non-overlapping periods, periods not before birth, the history
of every change, district scope, search, a person's year against the caps, and the identity a
claim is settled with. Imports (dry run, commit) are in ``importing``, re-exported here."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from settlement.claims import Claim
from settlement.claims.person_id import PersonIdError, check_person_id, normalize_person_id
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.errors import ServiceError, forbidden, invalid_request, not_found
from settlement.service.pages import decode_cursor, encode_cursor

from .importing import ImportRejected as ImportRejected  # imports: re-exported, callers use service
from .importing import ImportReport as ImportReport
from .importing import import_check as import_check
from .importing import import_commit as import_commit
from .models import Person, PersonCategory, PersonHistory
from .position import YearPosition as YearPosition
from .position import year_position as year_position
from .repository import add_history, get_person, identity_on, lock_person, person_snapshot, snapshot
from .schemas import CategoryPeriod, HistoryEntry, HistoryOut, PersonIn, PersonOut

NAME_ROLES = (Role.REVIEWER, Role.ADMIN)
"""Who sees names: insurers and hospitals never do."""

def checked_person_id(value: str) -> str:
    """A registry key: a valid resident id, normalized; else 422 invalid_person_id."""
    try:
        check_person_id(value, dt.date.max)
    except PersonIdError as exc:
        raise ServiceError(422, "invalid_person_id", str(exc)) from None
    return normalize_person_id(value)


def birth_problems(person_id: str, periods: list[CategoryPeriod]) -> list[tuple[int, str]]:
    """(index, message) of the periods that start before the birth date the id carries."""
    birth = check_person_id(person_id, dt.date.max)
    return [
        (i, f"the period starts on {p.valid_from}, before the person's birth on {birth}")
        for i, p in enumerate(periods)
        if p.valid_from < birth
    ]


def put_person(
    session: Session, principal: Principal, person_id: str, data: PersonIn, now: dt.datetime
) -> tuple[Person, bool]:
    """Replaces the person's entry wholesale (absent name/district: cleared); (person, created).

    The change and its history record (who, when, before, after) are written in
    the caller's transaction, under the person row's lock (lock_person): two
    concurrent PUTs record a chain of befores and afters, never the same before.
    A district-scoped reviewer gets 404 for a person outside the district and
    403 for moving one out of it. No record when nothing changes.
    """
    pid = checked_person_id(person_id)
    clashes = birth_problems(pid, data.categories)
    if clashes:
        raise ServiceError(
            422,
            "invalid_period",
            clashes[0][1],
            errors=[
                {"field": f"categories.{i}.valid_from", "in": "body", "message": m} for i, m in clashes
            ],
        )
    if not principal.sees_district(data.district):
        raise forbidden(
            f"a key scoped to district {principal.district} registers persons in it only; "
            f"district {data.district or '(none)'} is outside"
        )
    person, created = lock_person(session, pid, data.scheme, now)
    if not created and not principal.sees_district(person.district):
        raise not_found(f"person {pid} is not in the registry")
    before = None if created else person_snapshot(person)
    person.scheme = data.scheme
    person.name = data.name
    person.district = data.district
    periods = sorted(data.categories, key=lambda p: p.valid_from)
    after = snapshot(
        data.scheme, data.name, data.district, [(p.category, p.valid_from, p.valid_to) for p in periods]
    )
    if before != after:
        person.updated_at = now
        person.updated_by = principal.key_id
        person.periods = [
            PersonCategory(category=p.category, valid_from=p.valid_from, valid_to=p.valid_to)
            for p in periods
        ]
        session.flush()
        add_history(session, [(pid, before, after)], principal.actor, "put", now)
    session.flush()
    return person, created


def visible_person(session: Session, principal: Principal, person_id: str) -> Person:
    """The person with periods; 404 when unknown, malformed, or outside the caller's district."""
    pid = normalize_person_id(person_id)
    well_formed = len(pid) == 18 and pid.isascii() and pid[:17].isdigit() and (pid[17].isdigit() or pid[17] == "X")
    person = get_person(session, pid) if well_formed else None  # no NUL or stray text reaches the database
    if person is None or not principal.sees_district(person.district):
        raise not_found(f"person {person_id} is not in the registry")
    return person


def person_out(person: Person, principal: Principal) -> PersonOut:
    """The resource; the name only for reviewer and admin keys."""
    return PersonOut(
        person_id=person.person_id,
        scheme=person.scheme,
        name=person.name if principal.role in NAME_ROLES else None,
        district=person.district,
        categories=[
            CategoryPeriod(category=p.category, valid_from=p.valid_from, valid_to=p.valid_to)
            for p in person.periods
        ],
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


SNAPSHOT_FIELDS = ("scheme", "name", "district", "categories")


def history(session: Session, principal: Principal, person_id: str) -> HistoryOut:
    """Every change to the person's entry, oldest first (reviewer/admin; district-scoped)."""
    person = visible_person(session, principal, person_id)
    rows = session.scalars(
        select(PersonHistory)
        .where(PersonHistory.person_id == person.person_id)
        .order_by(PersonHistory.id)
    )
    return HistoryOut(
        person_id=person.person_id,
        items=[
            HistoryEntry(
                id=row.id,
                changed_at=row.changed_at,
                actor=row.actor,
                source=row.source,
                changed=[
                    f for f in SNAPSHOT_FIELDS
                    if row.before is None or row.before.get(f) != row.after.get(f)
                ],
                before=row.before,
                after=row.after,
            )
            for row in rows
        ],
    )


def identity_for_claim(session: Session, claim: Claim) -> tuple[str, str]:
    """The scheme and category the registry gives the claim's person on the admission date.

    422 person_not_registered when the person is unknown or no period covers
    the admission date; 422 identity_mismatch when the claim states a scheme
    or category that differs from the registry's.
    """
    person_id = normalize_person_id(claim.patient.person_id)
    return check_identity(claim, person_id, identity_on(session, person_id, claim.visit.admitted))


def check_identity(claim: Claim, person_id: str, found: tuple[str, str | None] | None) -> tuple[str, str]:
    """identity_for_claim on a registry row already read (the counter reads it with its totals)."""
    admitted = claim.visit.admitted
    if found is None:
        raise ServiceError(
            422,
            "person_not_registered",
            f"person {person_id} is not in the registry",
            claim_id=claim.claim_id,
        )
    scheme, category = found
    if category is None:
        raise ServiceError(
            422,
            "person_not_registered",
            f"person {person_id} has no category period covering the admission date {admitted}",
            claim_id=claim.claim_id,
        )
    stated = claim.patient
    mismatches = []
    if stated.scheme is not None and stated.scheme != scheme:
        mismatches.append(f"scheme {stated.scheme!r} (registry: {scheme!r})")
    if stated.category is not None and stated.category != category:
        mismatches.append(f"category {stated.category!r} (registry: {category!r} on {admitted})")
    if mismatches:
        raise ServiceError(
            422,
            "identity_mismatch",
            "the claim states " + " and ".join(mismatches),
            claim_id=claim.claim_id,
        )
    return scheme, category


CLI_ACTOR = Principal(key_id="cli", role=Role.ADMIN)
"""Who changes the registry from the command line (``settlement persons import``), as history says."""


# -- search ----------------------------------------------------------------------------------------


def _cursor_id(value: str) -> str:
    """A person id as a cursor holds it (ValueError for anything else: not one of ours)."""
    if not value or len(value) > 18 or not value.isascii() or not value.isalnum():
        raise ValueError(value)
    return value


def _digit_range(column: Any, prefix: str, width: int) -> Any:
    """column starts with prefix (digits; an id may end in X), as a range an index can serve.

    A range of digit strings sorts the same under every collation, where LIKE 'p%'
    needs the C collation to use a b-tree index on PostgreSQL.
    """
    if len(prefix) >= width:
        return column == prefix
    return and_(column >= prefix, column <= prefix + "9" * (width - len(prefix) - 1) + "9X"[width == 18])


def _like_escaped(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(
    session: Session,
    principal: Principal,
    *,
    q: str | None = None,
    district: str | None = None,
    category: str | None = None,
    scheme: str | None = None,
    on: dt.date,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """A page of persons by person_id: {"items": [...], "next_cursor"}; district-scoped.

    ``q`` matches an id prefix (a trailing x counts as X) or, for reviewer and
    admin keys only, a substring of the name. ``district`` is a 2/4/6-digit
    prefix, ANDed with the caller's own scope. ``category`` is the category in
    force on ``on`` (the callers' default: ctx.today(), in the service's time zone). Each item:
    person_id, scheme, name (null for insurers), district, category (on ``on``),
    updated_at.
    """
    current = (
        select(PersonCategory.category)
        .where(
            PersonCategory.person_id == Person.person_id,
            PersonCategory.valid_from <= on,
            or_(PersonCategory.valid_to.is_(None), PersonCategory.valid_to >= on),
        )
        .limit(1)
        .scalar_subquery()
    )
    query = select(Person.person_id, Person.scheme, Person.name, Person.district, current, Person.updated_at)
    sees_names = principal.role in NAME_ROLES
    if q is not None:
        q = q.strip()
        if not q:
            raise invalid_request("q is blank")
        if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in q):
            # those the document's pattern (service.strict) lets through, e.g. U+00AD: a rule refuses them
            raise ServiceError(422, "invalid_request", "q contains control or direction-formatting characters")
        conditions = []
        ident = normalize_person_id(q)
        if len(ident) <= 18 and ident.isascii() and ident.isalnum() and ident[:17].isdigit():
            conditions.append(_digit_range(Person.person_id, ident, 18))
        if sees_names:
            conditions.append(Person.name.like(f"%{_like_escaped(q)}%", escape="\\"))
        if not conditions:
            return {"items": [], "next_cursor": None}
        query = query.where(or_(*conditions))
    for prefix in (principal.district, district):
        if prefix is not None:
            query = query.where(_digit_range(Person.district, prefix, 6))
    if scheme is not None:
        query = query.where(Person.scheme == scheme)
    if category is not None:
        query = query.where(current == category)
    if cursor:
        query = query.where(Person.person_id > decode_cursor(cursor, "p", _cursor_id))
    rows = session.execute(query.order_by(Person.person_id).limit(limit + 1)).all()
    page = rows[:limit]
    return {
        "items": [
            {
                "person_id": pid,
                "scheme": sch,
                "name": name if sees_names else None,
                "district": dist,
                "category": cat,
                "updated_at": updated,
            }
            for pid, sch, name, dist, cat, updated in page
        ],
        "next_cursor": encode_cursor("p", page[-1][0]) if len(rows) > limit else None,
    }
