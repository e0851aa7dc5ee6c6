"""The claim checks both readers share: the person id (GB 11643), its birth date, age, real dates,
and which catalog row an item code is (the catalog index).

One source for the per-line reader (`person_id.check_person_id`, `parse.prepare_claim`) and the
compiled scanner (`columnar._check_kernel`, which calls these as jit helpers), so the two cannot
disagree. Characters are given as code points (a str's `ord`s, or the UTF-8 bytes of an ASCII id);
dates as y·10^4 + m·100 + d.
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from settlement.jit import helper, kernel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from settlement.engine.tables import Tables

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

MAX_QUANTITY = 10_000
MAX_UNIT_PRICE = 1_000_000
MAX_ITEMS = 10_000
"""The limits of a claim's items (SPEC §3), here so that the readers that never need the pydantic model
(`fast`, `columnar`) do not import it."""

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


# ---------------------------------------------------------------- catalog codes


class CatalogTable(NamedTuple):
    """The catalog index's entries as arrays, for compiled code: entry e is code
    code_buf[code_off[e]:code_off[e + 1]] (UTF-8) of version entry_version[e], at global row entry_row[e];
    slots is an open-addressing hash table of entry numbers (-1: empty), a power of two long."""

    slots: I64
    entry_version: I64
    entry_row: I64
    code_buf: U8
    code_off: I64


@helper
def code_hash(buf: U8, s: int, e: int, salt: int) -> int:
    """FNV-1a over the bytes buf[s:e] and the salt, kept non-negative."""
    h = np.uint64(14695981039346656037) ^ np.uint64(salt)
    for j in range(s, e):
        h = (h ^ np.uint64(buf[j])) * np.uint64(1099511628211)
    return int(h >> np.uint64(1))


@helper
def same_bytes(a: U8, a0: int, b: U8, b0: int, n: int) -> bool:
    """Whether a[a0:a0 + n] and b[b0:b0 + n] hold the same bytes (the hash tables' key comparison)."""
    for j in range(n):  # noqa: SIM110 - a loop numba compiles (no generator)
        if a[a0 + j] != b[b0 + j]:
            return False
    return True


@helper
def catalog_row(buf: U8, s: int, e: int, version: int, table: CatalogTable) -> int:
    """The global catalog row of the code buf[s:e] (UTF-8) in a version's catalog; -1 when it is not there."""
    slots = table.slots
    code_buf = table.code_buf
    code_off = table.code_off
    mask = slots.shape[0] - 1
    slot = code_hash(buf, s, e, version) & mask
    while slots[slot] >= 0:
        entry = slots[slot]
        a = code_off[entry]
        if (table.entry_version[entry] == version and code_off[entry + 1] - a == e - s
                and same_bytes(buf, s, code_buf, a, e - s)):
            return int(table.entry_row[entry])
        slot = (slot + 1) & mask
    return -1


@kernel
def _fill_slots(code_buf: U8, code_off: I64, entry_version: I64, slots: I64) -> None:
    mask = slots.shape[0] - 1
    for entry in range(entry_version.shape[0]):
        slot = code_hash(code_buf, code_off[entry], code_off[entry + 1], entry_version[entry]) & mask
        while slots[slot] >= 0:
            slot = (slot + 1) & mask
        slots[slot] = entry


class CatalogIndex:
    """Which global row an item code is in a version's catalog: the one answer to "is this code in that
    version's catalog, and which row", for both readers.

    Its entries are the compiled schedule's (`Tables.catalog_rows`: per version, code → global row),
    seen two ways: :meth:`rows_of` reads them as they are (a dict look-up a code: the per-claim reader,
    the counter's one claim), :attr:`table` holds the same entries as arrays for the compiled scanner
    (`catalog_row`), built on its first use — building it on the kernels' Python source would cost a
    process that never scans more than the look-ups it saves. `tests/claims/test_columnar.py` holds the
    two to the same answer for every entry and for codes of other versions.
    """

    def __init__(self, tables: Tables) -> None:
        self._rows = tables.catalog_rows
        self.effective_from = np.array(
            [v.effective_from.year * 10_000 + v.effective_from.month * 100 + v.effective_from.day
             for v in tables.schedules.versions],
            dtype=np.int64,
        )
        """Per version, y·10^4 + m·100 + d, in the schedule set's order (schedules.types.version_in_force)."""

    def rows_of(self, codes: Sequence[str], version: int) -> list[int]:
        """The global row of each code in the version's catalog, -1 for a code not in it."""
        rows = self._rows[version]
        return [rows.get(code, -1) for code in codes]

    @cached_property
    def table(self) -> CatalogTable:
        codes: list[bytes] = []
        versions: list[int] = []
        rows: list[int] = []
        for v, catalog in enumerate(self._rows):
            for code, row in catalog.items():
                codes.append(code.encode("utf-8"))
                versions.append(v)
                rows.append(row)
        size = 1
        while size < 2 * len(codes) + 2:
            size *= 2
        slots = np.full(size, -1, dtype=np.int64)
        code_buf = np.frombuffer(b"".join(codes), dtype=np.uint8).copy() if codes else np.zeros(0, np.uint8)
        code_off = np.cumsum([0, *(len(c) for c in codes)]).astype(np.int64)
        entry_version = np.array(versions, dtype=np.int64)
        _fill_slots(code_buf, code_off, entry_version, slots)
        return CatalogTable(slots, entry_version, np.array(rows, dtype=np.int64), code_buf, code_off)


_indexes: dict[int, tuple[weakref.ref[Tables], CatalogIndex]] = {}


def catalog_index(tables: Tables) -> CatalogIndex:
    """The catalog index of a schedule set, made once per Tables (no Tables kept alive by it)."""
    held = _indexes.get(id(tables))
    if held is None or held[0]() is not tables:
        held = (weakref.ref(tables), CatalogIndex(tables))
        _indexes[id(tables)] = held
        weakref.finalize(tables, _indexes.pop, id(tables), None)
    return held[1]
