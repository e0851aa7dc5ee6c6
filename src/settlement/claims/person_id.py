"""Resident identity numbers (GB 11643-1999), checked as SPEC §3 says."""

from __future__ import annotations

import datetime as dt

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


class PersonIdError(ValueError):
    """The person id is not a valid 18-character resident id."""


def normalize_person_id(value: str) -> str:
    """Upper-cases a trailing x: '…x' and '…X' are the same person."""
    return value.upper()


def check_person_id(value: str, admitted: dt.date) -> dt.date:
    """Validates the id and returns the birth date it carries."""
    if len(value) != 18:
        raise PersonIdError(f"person_id must have 18 characters, got {len(value)}")
    body, check = value[:17], value[17].upper()
    if not body.isascii() or not body.isdigit():
        raise PersonIdError("person_id: the first 17 characters must be digits")
    if not (check.isdigit() or check == "X"):
        raise PersonIdError("person_id: the check character must be a digit or X")
    expected = CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]
    if check != expected:
        raise PersonIdError("person_id check character is wrong")
    try:
        birth = dt.date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError as exc:
        raise PersonIdError(f"person_id birth date {body[6:14]} is not a real date") from exc
    if birth > admitted:
        raise PersonIdError(f"person_id birth date {birth.isoformat()} is after admission")
    return birth


def age_on(birth: dt.date, day: dt.date) -> int:
    """Whole years on a day (a 29 February birthday counts on 1 March in common years)."""
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years
