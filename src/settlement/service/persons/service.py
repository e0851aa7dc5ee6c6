"""Registry rules: valid ids, non-overlapping periods, periods not before birth, the history
of every change, district scope, search, a person's year against the caps, and the identity a
claim is settled with. Imports (dry run, commit) are in ``importing``, re-exported here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.claims import Claim
from settlement.claims.person_id import PersonIdError, check_person_id, normalize_person_id
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.errors import ServiceError, forbidden, not_found

from .importing import ImportRejected as ImportRejected  # imports: re-exported, callers use service
from .importing import ImportReport as ImportReport
from .importing import import_check as import_check
from .importing import import_commit as import_commit
from .models import Person, PersonCategory, PersonHistory
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


def in_scope(principal: Principal, district: str | None) -> bool:
    return principal.sees_district(district)


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
    person = get_person(session, pid) if len(pid) <= 18 else None
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
