"""The claim checks both readers share: the person id (GB 11643), its birth date, age, real dates.

One source for the per-line reader (`person_id.check_person_id`) and the
compiled scanner (`columnar._check_kernel`, which calls these as jit helpers),
so the two cannot disagree. Characters are given as code points (a str's
`ord`s, or the UTF-8 bytes of an ASCII id); dates as y·10^4 + m·100 + d.
"""

from __future__ import annotations

from typing import Any

from settlement.jit import helper

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
"""The check character for a weighted sum ≡ r (mod 11) is CHECK[r]."""

BAD_DIGITS = -1
"""person_number: one of the first 17 characters is not an ASCII digit."""
BAD_CHECK_CHARACTER = -2
"""person_number: the 18th character is neither a digit nor X (x)."""
WRONG_CHECK = -3
"""person_number: the check character does not match the 17 digits."""


@helper
def days_in_month(y: int, m: int) -> int:
    if m == 2:
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        return 29 if leap else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


@helper
def real_date(y: int, m: int, d: int) -> int:
    """y·10^4 + m·100 + d when it is a date (years 1-9999), else -1."""
    if y < 1 or y > 9999 or m < 1 or m > 12 or d < 1 or d > days_in_month(y, m):
        return -1
    return y * 10_000 + m * 100 + d


@helper
def person_number(chars: Any, s: int) -> int:
    """The 18 characters chars[s:s + 18] of a person id as 17 digits × 11 + check value (x is X),
    or BAD_DIGITS, BAD_CHECK_CHARACTER or WRONG_CHECK, checked in that order."""
    body = 0
    total = 0
    for j in range(17):
        c = int(chars[s + j])
        if c < 48 or c > 57:
            return BAD_DIGITS
        body = body * 10 + (c - 48)
        total += (c - 48) * WEIGHTS[j]
    last = int(chars[s + 17])
    if last == 88 or last == 120:  # X, x
        value = 10
    elif 48 <= last <= 57:
        value = last - 48
    else:
        return BAD_CHECK_CHARACTER
    if (12 - total % 11) % 11 != value:  # CHECK[total % 11], as a number (X = 10)
        return WRONG_CHECK
    return body * 11 + value


@helper
def birth_day(chars: Any, s: int) -> int:
    """The birth date a person id carries (characters 7-14, digits already checked), or -1 if not a date."""
    y = 0
    for j in range(6, 10):
        y = y * 10 + int(chars[s + j]) - 48
    m = (int(chars[s + 10]) - 48) * 10 + int(chars[s + 11]) - 48
    d = (int(chars[s + 12]) - 48) * 10 + int(chars[s + 13]) - 48
    return real_date(y, m, d)


@helper
def whole_years(birth: int, day: int) -> int:
    """Age in whole years on a day (a 29 February birthday counts on 1 March in common years)."""
    years = day // 10_000 - birth // 10_000
    if day % 10_000 < birth % 10_000:
        years -= 1
    return years
