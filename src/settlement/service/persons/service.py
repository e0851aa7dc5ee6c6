"""Registry rules: valid ids, non-overlapping periods, all-or-nothing CSV import,
and the identity a claim is settled with."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from settlement.claims import Claim
from settlement.claims.person_id import PersonIdError, check_person_id, normalize_person_id
from settlement.service.errors import ServiceError

from .models import Person, PersonCategory
from .repository import identity_on, lock_person, replace_many
from .schemas import CategoryPeriod, PersonIn, overlaps

CSV_HEADER = ["person_id", "scheme", "category", "valid_from", "valid_to"]


def checked_person_id(value: str) -> str:
    """A registry key: a valid resident id, normalized; else 422 invalid_person_id."""
    try:
        check_person_id(value, dt.date.max)
    except PersonIdError as exc:
        raise ServiceError(422, "invalid_person_id", str(exc)) from None
    return normalize_person_id(value)


def _replace(
    session: Session, person_id: str, data: PersonIn, key_id: str | None, now: dt.datetime
) -> tuple[Person, bool]:
    person, created = lock_person(session, person_id, data.scheme, now)
    person.scheme = data.scheme
    person.updated_at = now
    person.updated_by = key_id
    person.periods = [
        PersonCategory(category=p.category, valid_from=p.valid_from, valid_to=p.valid_to)
        for p in sorted(data.categories, key=lambda p: p.valid_from)
    ]
    session.flush()
    return person, created


def put_person(
    session: Session, person_id: str, data: PersonIn, key_id: str | None, now: dt.datetime
) -> tuple[Person, bool]:
    """Replaces the person's scheme and periods wholesale; (person, created)."""
    return _replace(session, checked_person_id(person_id), data, key_id, now)


def _parse_csv(text: str) -> tuple[dict[str, PersonIn], list[dict[str, Any]], int]:
    errors: list[dict[str, Any]] = []
    rows_by_person: dict[str, list[tuple[int, str, CategoryPeriod]]] = defaultdict(list)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != CSV_HEADER:
        errors.append(
            {
                "line": 1,
                "field": "(header)",
                "message": f"the header must be {','.join(CSV_HEADER)}",
            }
        )
        return {}, errors, 0
    count = 0
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(CSV_HEADER):
            errors.append(
                {"line": line_no, "field": "(row)", "message": f"expected 5 fields, got {len(row)}"}
            )
            continue
        pid, scheme, category, valid_from, valid_to = (cell.strip() for cell in row)
        try:
            pid = checked_person_id(pid)
        except ServiceError as exc:
            errors.append({"line": line_no, "field": "person_id", "message": exc.detail})
            continue
        if scheme not in ("resident", "employee"):
            errors.append(
                {"line": line_no, "field": "scheme", "message": f"unknown scheme {scheme!r}"}
            )
            continue
        try:
            period = CategoryPeriod.model_validate(
                {"category": category, "valid_from": valid_from, "valid_to": valid_to or None}
            )
        except ValidationError as exc:
            for e in exc.errors():
                field = ".".join(str(p) for p in e["loc"]) or "(row)"
                errors.append(
                    {
                        "line": line_no,
                        "field": field,
                        "message": e["msg"].removeprefix("Value error, "),
                    }
                )
            continue
        rows_by_person[pid].append((line_no, scheme, period))
        count += 1
    persons: dict[str, PersonIn] = {}
    for pid, rows in rows_by_person.items():
        schemes = {scheme for _, scheme, _ in rows}
        if len(schemes) > 1:
            errors.append(
                {
                    "line": rows[-1][0],
                    "field": "scheme",
                    "message": f"person {pid} has rows with different schemes: "
                    + ", ".join(sorted(schemes)),
                }
            )
            continue
        periods = [p for _, _, p in rows]
        clashes = overlaps(periods)
        if clashes:
            a, b = clashes[0]
            errors.append(
                {
                    "line": rows[b][0],
                    "field": "valid_from",
                    "message": f"person {pid}: the period overlaps the one on line {rows[a][0]}",
                }
            )
            continue
        persons[pid] = PersonIn(scheme=rows[0][1], categories=periods)
    return persons, errors, count


def import_csv(
    session: Session, text: str, key_id: str | None, now: dt.datetime
) -> tuple[int, int]:
    """Imports every person of the file (each replaces that person's entry), or nothing.

    Returns (persons, periods); a file with any error raises 422 invalid_import listing them.
    """
    persons, errors, count = _parse_csv(text)
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise ServiceError(
            422,
            "invalid_import",
            f"{len(errors)} error(s); nothing was imported",
            errors=errors[:1000],
        )
    if not persons:
        raise ServiceError(422, "invalid_import", "the file holds no rows")
    replace_many(
        session,
        {
            pid: (data.scheme, [(p.category, p.valid_from, p.valid_to) for p in data.categories])
            for pid, data in persons.items()
        },
        key_id,
        now,
    )
    session.flush()
    return len(persons), count


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
