"""Resident identity numbers (GB 11643-1999), checked as SPEC §3 says."""

from __future__ import annotations

import datetime as dt

from settlement.schedules.types import ymd

from .checks import BAD_CHECK_CHARACTER, BAD_DIGITS, CHECK, WEIGHTS, WRONG_CHECK, birth_day, person_number, whole_years

__all__ = ["CHECK", "WEIGHTS", "PersonIdError", "age_on", "check_person_id", "normalize_person_id"]

class PersonIdError(ValueError):
    """The person id is not a valid 18-character resident id."""


def normalize_person_id(value: str) -> str:
    """Upper-cases a trailing x: '…x' and '…X' are the same person."""
    return value.upper()


def check_person_id(value: str, admitted: dt.date) -> dt.date:
    """Validates the id and returns the birth date it carries (the checks of claims.checks, with their messages)."""
    if len(value) != 18:
        raise PersonIdError(f"person_id must have 18 characters, got {len(value)}")
    chars = [ord(c) for c in value]
    number = person_number(chars, 0)
    if number == BAD_DIGITS:
        raise PersonIdError("person_id: the first 17 characters must be digits")
    if number == BAD_CHECK_CHARACTER:
        raise PersonIdError("person_id: the check character must be a digit or X")
    if number == WRONG_CHECK:
        raise PersonIdError("person_id check character is wrong")
    born = birth_day(chars, 0)
    if born < 0:
        raise PersonIdError(f"person_id birth date {value[6:14]} is not a real date")
    birth = dt.date(born // 10_000, born // 100 % 100, born % 100)
    if birth > admitted:
        raise PersonIdError(f"person_id birth date {birth.isoformat()} is after admission")
    return birth


def age_on(birth: dt.date, day: dt.date) -> int:
    """Whole years on a day (a 29 February birthday counts on 1 March in common years)."""
    return whole_years(ymd(birth), ymd(day))
