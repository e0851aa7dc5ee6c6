"""Resident identity numbers (GB 11643-1999), checked as SPEC §3 says."""

from __future__ import annotations

import datetime as dt

from settlement.catalog import N_, Message, MessageError
from settlement.schedules.types import ymd

from .checks import BAD_CHECK_CHARACTER, BAD_DIGITS, CHECK, WEIGHTS, WRONG_CHECK, birth_day, person_number, whole_years

__all__ = ["CHECK", "WEIGHTS", "PersonIdError", "age_on", "check_person_id", "normalize_person_id"]


class PersonIdError(MessageError):
    """The person id is not a valid 18-character resident id.

    A catalog message whose ``subject`` names the id (``person_id`` in the API's English text; a page
    or an import names it as its reader sees it: ``with_subject``).
    """

    def with_subject(self, subject: str | Message) -> Message:
        """The same message naming the id as ``subject`` (a column's title, a form field's label)."""
        return Message(self.message.id, {**self.message.values, "subject": subject})


SUBJECT = "person_id"
"""How the API's messages name the id."""


def _error(message_id: str, **values: object) -> PersonIdError:
    return PersonIdError(message_id, subject=SUBJECT, **values)


def normalize_person_id(value: str) -> str:
    """Upper-cases a trailing x: '…x' and '…X' are the same person."""
    return value.upper()


def check_person_id(value: str, admitted: dt.date) -> dt.date:
    """Validates the id and returns the birth date it carries (the checks of claims.checks, with their messages)."""
    if len(value) != 18:
        raise _error(N_("%(subject)s must have 18 characters, got %(length)s"), length=len(value))
    chars = [ord(c) for c in value]
    number = person_number(chars, 0)
    if number == BAD_DIGITS:
        raise _error(N_("%(subject)s: the first 17 characters must be digits"))
    if number == BAD_CHECK_CHARACTER:
        raise _error(N_("%(subject)s: the check character must be a digit or X"))
    if number == WRONG_CHECK:
        raise _error(N_("%(subject)s check character is wrong"))
    born = birth_day(chars, 0)
    if born < 0:
        raise _error(N_("%(subject)s birth date %(digits)s is not a real date"), digits=value[6:14])
    birth = dt.date(born // 10_000, born // 100 % 100, born % 100)
    if birth > admitted:
        raise _error(N_("%(subject)s birth date %(birth)s is after admission"), birth=birth.isoformat())
    return birth


def age_on(birth: dt.date, day: dt.date) -> int:
    """Whole years on a day (a 29 February birthday counts on 1 March in common years)."""
    return whole_years(ymd(birth), ymd(day))
