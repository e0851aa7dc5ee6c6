"""The batch reader's columnar path: JSON lines straight into the engine's columns.

Only for throughput (`settlement settle`, SPEC §8). A compiled scanner reads
each line of a block of bytes and accepts it only when it is certainly a
valid claim of one narrow, common shape — a JSON object with the keys of
SPEC §3 and nothing else, no key twice, strings without escapes, control
characters or the characters identifiers may not hold (claim id, hospital
id, treatment and item codes in UTF-8, the rest in ASCII; the ids neither
blank nor padded), numbers plain (no sign or exponent, at most 4 decimals by
value), every value within its limits — and when the person id, the
schedule and every catalog code check out too. What it accepts it writes
into int64 columns, no Python object per item. Every other line — an error
of any kind, or anything merely unusual (a `\\u` escape, a byte-order mark,
a duplicate key) — is left to the per-line readers (`fast.fast_records`,
then the pydantic model), which are the contract and write every error
message; a differential test holds them to identical results.

The scanner decides only "certainly valid, and these are the values"; it
applies no rule of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from settlement import jit
from settlement.engine.tables import Tables
from settlement.jit import helper, kernel
from settlement.schedules.types import CATEGORIES, SCHEMES, VISIT_TYPES, version_in_force

from .checks import (
    MAX_ITEMS,
    MAX_QUANTITY,
    MAX_UNIT_PRICE,
    CatalogTable,
    birth_day,
    catalog_index,
    catalog_row,
    code_hash,
    person_number,
    real_date,
    same_bytes,
    whole_years,
)

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
# The words the scanner knows, in one byte table. Keys first, per object, then
# the enumerations in the engine's index order (schedules.types), then null.
_KEYS_CLAIM = ("claim_id", "hospital", "patient", "visit", "diagnosis", "treatment", "sessions", "items")
_KEYS_HOSPITAL = ("id", "level")
_KEYS_PATIENT = ("person_id", "scheme", "category")
_KEYS_VISIT = ("type", "admitted", "discharged")
_KEYS_DIAGNOSIS = ("primary",)
_KEYS_ITEM = ("code", "quantity", "unit_price")
_WORDS = (
    *_KEYS_CLAIM, *_KEYS_HOSPITAL, *_KEYS_PATIENT, *_KEYS_VISIT, *_KEYS_DIAGNOSIS, *_KEYS_ITEM,
    *SCHEMES, *CATEGORIES, *VISIT_TYPES, "null",
)
W_CLAIM = 0
W_HOSPITAL = W_CLAIM + len(_KEYS_CLAIM)
W_PATIENT = W_HOSPITAL + len(_KEYS_HOSPITAL)
W_VISIT = W_PATIENT + len(_KEYS_PATIENT)
W_DIAGNOSIS = W_VISIT + len(_KEYS_VISIT)
W_ITEM = W_DIAGNOSIS + len(_KEYS_DIAGNOSIS)
W_SCHEME = W_ITEM + len(_KEYS_ITEM)
W_CATEGORY = W_SCHEME + len(SCHEMES)
W_VISIT_TYPE = W_CATEGORY + len(CATEGORIES)
W_NULL = W_VISIT_TYPE + len(VISIT_TYPES)
W_END = W_NULL + 1
WORDS = np.frombuffer("".join(_WORDS).encode("ascii"), dtype=np.uint8).copy()
WORD_OFF = np.cumsum([0, *(len(w) for w in _WORDS)]).astype(np.int64)
NONE_CATEGORY = CATEGORIES.index("none")

# Limits ×10^4 (quantity and unit price are held scaled by 10^4)
_Q_MAX = MAX_QUANTITY * 10_000
_P_MAX = MAX_UNIT_PRICE * 10_000
_MAX_INT_DIGITS = 7
"""Integer digits (leading zeros aside) that can be within either limit; more send the line on."""



# ---------------------------------------------------------------- scanning helpers


@helper
def _ws(buf: U8, p: int, e: int) -> int:
    """First position at or after p that is not JSON whitespace.

    Callers call it only when buf[p] ≤ 32: compact JSON has none, and calling it at every token cost more
    than the rest of the scan (docs/PERFORMANCE.md §7.2)."""
    while p < e:
        c = buf[p]
        if c == 32 or c == 9 or c == 10 or c == 13:
            p += 1
        else:
            break
    return p


@helper
def _string(buf: U8, p: int, e: int) -> int:
    """p is just after an opening quote: the closing quote's position, or -1 (escape, control, non-ASCII, DEL)."""
    while p < e:
        c = buf[p]
        if c == 34:
            return p
        if c < 32 or c >= 127 or c == 92:
            return -1
        p += 1
    return -1


@helper
def _text(buf: U8, p: int, e: int) -> tuple[int, int]:
    """p is just after an opening quote of a value: (closing quote, characters), or (-1, 0).

    Printable ASCII and strict UTF-8 (no overlong form, no surrogate, nothing above U+10FFFF) are taken
    as they are; an escape, a control character, DEL or a byte that is not UTF-8 sends the line on.
    Characters are counted as Python counts them (code points), for the length limits.
    """
    chars = 0
    while p < e:
        c = buf[p]
        if c == 34:
            return p, chars
        if c < 32 or c == 92 or c == 127:
            return -1, 0
        chars += 1
        if c < 128:
            p += 1
            continue
        lo, hi = 0x80, 0xBF
        if 0xC2 <= c <= 0xDF:
            n = 1
        elif c == 0xE0:
            n, lo = 2, 0xA0
        elif c == 0xED:
            n, hi = 2, 0x9F
        elif 0xE1 <= c <= 0xEF:
            n = 2
        elif c == 0xF0:
            n, lo = 3, 0x90
        elif c == 0xF4:
            n, hi = 3, 0x8F
        elif 0xF1 <= c <= 0xF3:
            n = 3
        else:
            return -1, 0
        if p + n >= e or buf[p + 1] < lo or buf[p + 1] > hi:
            return -1, 0
        b1 = buf[p + 1]
        if (c == 0xC2 and b1 <= 0x9F) or (c == 0xD8 and b1 == 0x9C):  # C1 controls, U+061C
            return -1, 0
        if c == 0xE2 and (b1 == 0x80 or b1 == 0x81):  # U+2000-U+207F: the bidi marks, overrides, isolates
            return -1, 0  # and separators the models refuse are there (the rest is as rare in a claim)
        for j in range(2, n + 1):
            if buf[p + j] < 0x80 or buf[p + j] > 0xBF:
                return -1, 0
        p += n + 1
    return -1, 0


@helper
def _space_at(buf: U8, p: int) -> bool:
    """Whether the character _text took at p is white space as str.isspace has it. _text lets only these
    through: the space, U+00A0 (C2 A0), U+1680 (E1 9A 80) and U+3000 (E3 80 80); the rest of Python's
    white space is control characters or in U+2000-U+207F, which _text refuses."""
    c = buf[p]
    if c == 32:
        return True
    if c == 0xC2:
        return bool(buf[p + 1] == 0xA0)
    if c == 0xE1:
        return bool(buf[p + 1] == 0x9A and buf[p + 2] == 0x80)
    if c == 0xE3:
        return bool(buf[p + 1] == 0x80 and buf[p + 2] == 0x80)
    return False


@helper
def _padded(buf: U8, s: int, e: int) -> bool:
    """An identifier [s, e) of at least one character, strict UTF-8 as _text took it, that begins or ends
    with white space (models.check_identifier refuses it; a blank one begins with white space too)."""
    last = e - 1
    while last > s and 0x80 <= buf[last] <= 0xBF:  # back over the last character's continuation bytes
        last -= 1
    return _space_at(buf, s) or _space_at(buf, last)


@helper
def _word(buf: U8, s: int, end: int, words: U8, word_off: I64, lo: int, hi: int) -> int:
    """Which word in [lo, hi) the bytes buf[s:end] are; -1 for none."""
    n = end - s
    for w in range(lo, hi):
        a = word_off[w]
        if word_off[w + 1] - a != n:
            continue
        same = True
        for j in range(n):
            if buf[s + j] != words[a + j]:
                same = False
                break
        if same:
            return w
    return -1


@helper
def _is_null(buf: U8, p: int, e: int, words: U8, word_off: I64) -> bool:
    a = word_off[W_NULL]
    if p + 4 > e:
        return False
    for j in range(4):  # noqa: SIM110 - numba compiles no generator here
        if buf[p + j] != words[a + j]:
            return False
    return True


@helper
def _small_int(buf: U8, p: int, e: int) -> tuple[int, int]:
    """A JSON integer without sign of at most 4 digits: (value, position after); (-1, -1) otherwise."""
    if p >= e or buf[p] < 48 or buf[p] > 57:
        return -1, -1
    if buf[p] == 48 and p + 1 < e and 48 <= buf[p + 1] <= 57:
        return -1, -1  # leading zero: not JSON
    v = 0
    n = 0
    while p < e and 48 <= buf[p] <= 57:
        v = v * 10 + (buf[p] - 48)
        p += 1
        n += 1
        if n > 4:
            return -1, -1
    return v, p


@helper
def _decimal(buf: U8, p: int, e: int, quoted: bool) -> tuple[int, int]:
    """A plain decimal (digits, optionally a point and digits) × 10^4: (value, position after); (-1, -1) when
    it is not plain, has more than 4 decimals by value or more than _MAX_INT_DIGITS integer digits.

    Quoted (a string): leading zeros are fine, as for the pydantic model's regex. A JSON number: no leading
    zero before another digit, as JSON says."""
    start = p
    if p >= e or buf[p] < 48 or buf[p] > 57:
        return -1, -1
    if not quoted and buf[p] == 48 and p + 1 < e and 48 <= buf[p + 1] <= 57:
        return -1, -1
    whole = 0
    digits = 0
    while p < e and 48 <= buf[p] <= 57:
        if digits > 0 or buf[p] != 48:
            digits += 1
            whole = whole * 10 + (buf[p] - 48)
        p += 1
    if digits > _MAX_INT_DIGITS:
        return -1, -1
    frac = 0
    if p < e and buf[p] == 46:  # '.'
        p += 1
        f0 = p
        while p < e and 48 <= buf[p] <= 57:
            p += 1
        if p == f0:
            return -1, -1
        last = p  # drop trailing zeros: decimals count by value
        while last > f0 and buf[last - 1] == 48:
            last -= 1
        if last - f0 > 4:
            return -1, -1
        scale = 1000
        for j in range(f0, last):
            frac += (buf[j] - 48) * scale
            scale //= 10
    if start == p:
        return -1, -1
    return whole * 10_000 + frac, p


@helper
def _number_or_string(buf: U8, p: int, e: int) -> tuple[int, int]:
    """quantity / unit_price: a JSON number or a plain decimal string, × 10^4."""
    if p < e and buf[p] == 34:
        close = _string(buf, p + 1, e)
        if close < 0:
            return -1, -1
        v, after = _decimal(buf, p + 1, close, True)
        if after != close:
            return -1, -1
        return v, close + 1
    v, after = _decimal(buf, p, e, False)
    if after < 0:
        return -1, -1
    if after < e and (buf[after] == 101 or buf[after] == 69):  # an exponent: the exact path reads it
        return -1, -1
    return v, after


@helper
def _digits(buf: U8, s: int, n: int) -> int:
    v = 0
    for j in range(s, s + n):
        c = buf[j]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@helper
def _date(buf: U8, s: int, end: int) -> int:
    """A real ISO date YYYY-MM-DD as y·10^4 + m·100 + d; -1 otherwise."""
    if end - s != 10 or buf[s + 4] != 45 or buf[s + 7] != 45:
        return -1
    y = _digits(buf, s, 4)
    m = _digits(buf, s + 5, 2)
    d = _digits(buf, s + 8, 2)
    if y < 0 or m < 0 or d < 0:
        return -1
    return real_date(y, m, d)


# ---------------------------------------------------------------- the scanner


@kernel
def _scan_kernel(
    buf: U8, starts: I64, ends: I64, words: U8, word_off: I64,
    ok: npt.NDArray[np.bool_], claim: I64, item_code: I64, item_qty: I64, item_price: I64,
) -> int:
    """Reads each line [starts[k], ends[k]); ok[k] when it is certainly a valid claim of the common shape.

    claim[k] holds, for an ok line: 0–1 claim_id span, 2 level, 3–4 person_id span, 5 scheme, 6 category
    (-1 when null or absent), 7 visit type, 8 admitted, 9 discharged (y·10^4 + m·100 + d), 10–11 diagnosis
    span, 12–13 treatment span (-1 when null or absent), 14 sessions, 15 first item, 16 item count. Items:
    item_code [i, 0–1] code span, item_qty / item_price × 10^4. Returns the number of items written.
    """
    cursor = 0
    for k in range(starts.shape[0]):
        ok[k] = False
        s = starts[k]
        e = ends[k]
        row = claim[k]
        row[5] = -1
        row[6] = -1
        row[12] = -1
        row[13] = -1
        row[14] = 1
        row[15] = cursor
        row[16] = 0
        first_item = cursor
        p = s
        if p < e and buf[p] <= 32:
            p = _ws(buf, p, e)
        if p >= e or buf[p] != 123:
            continue
        p = p + 1
        if p < e and buf[p] <= 32:
            p = _ws(buf, p, e)
        seen = 0
        good = True
        while good:
            # a key
            if p >= e or buf[p] != 34:
                good = False
                break
            close = _string(buf, p + 1, e)
            if close < 0:
                good = False
                break
            key = _word(buf, p + 1, close, words, word_off, W_CLAIM, W_HOSPITAL)
            if key < 0 or seen & (1 << key):
                good = False
                break
            seen |= 1 << key
            p = close + 1
            if p < e and buf[p] <= 32:
                p = _ws(buf, p, e)
            if p >= e or buf[p] != 58:
                good = False
                break
            p = p + 1
            if p < e and buf[p] <= 32:
                p = _ws(buf, p, e)
            if p >= e:
                good = False
                break
            if key == 0 or key == 5:  # claim_id, treatment: 1–128 characters (treatment may be null)
                if key == 5 and _is_null(buf, p, e, words, word_off):
                    p += 4
                else:
                    if buf[p] != 34:
                        good = False
                        break
                    close, n = _text(buf, p + 1, e)
                    if close < 0 or n < 1 or n > 128:
                        good = False
                        break
                    if key == 0 and _padded(buf, p + 1, close):
                        good = False
                        break
                    row[0 if key == 0 else 12] = p + 1
                    row[1 if key == 0 else 13] = close
                    p = close + 1
            elif key == 6:  # sessions: a JSON integer 1–366
                v, after = _small_int(buf, p, e)
                if v < 1 or v > 366:
                    good = False
                    break
                row[14] = v
                p = after
            elif key == 7:  # items
                if buf[p] != 91:
                    good = False
                    break
                p = p + 1
                if p < e and buf[p] <= 32:
                    p = _ws(buf, p, e)
                count = 0
                while good:
                    if p >= e or buf[p] != 123:
                        good = False
                        break
                    p = p + 1
                    if p < e and buf[p] <= 32:
                        p = _ws(buf, p, e)
                    iseen = 0
                    while good:
                        if p >= e or buf[p] != 34:
                            good = False
                            break
                        close = _string(buf, p + 1, e)
                        if close < 0:
                            good = False
                            break
                        ikey = _word(buf, p + 1, close, words, word_off, W_ITEM, W_SCHEME) - W_ITEM
                        if ikey < 0 or iseen & (1 << ikey):
                            good = False
                            break
                        iseen |= 1 << ikey
                        p = close + 1
                        if p < e and buf[p] <= 32:
                            p = _ws(buf, p, e)
                        if p >= e or buf[p] != 58:
                            good = False
                            break
                        p = p + 1
                        if p < e and buf[p] <= 32:
                            p = _ws(buf, p, e)
                        if p >= e:
                            good = False
                            break
                        if ikey == 0:  # code: 1–128 characters
                            if buf[p] != 34:
                                good = False
                                break
                            close, n = _text(buf, p + 1, e)
                            if close < 0 or n < 1 or n > 128:
                                good = False
                                break
                            item_code[cursor, 0] = p + 1
                            item_code[cursor, 1] = close
                            p = close + 1
                        else:
                            v, after = _number_or_string(buf, p, e)
                            if after < 0:
                                good = False
                                break
                            if ikey == 1:  # 0 < quantity ≤ 10,000
                                if v <= 0 or v > _Q_MAX:
                                    good = False
                                    break
                                item_qty[cursor] = v
                            else:  # 0 ≤ unit_price ≤ 1,000,000
                                if v > _P_MAX:
                                    good = False
                                    break
                                item_price[cursor] = v
                            p = after
                        if p < e and buf[p] <= 32:
                            p = _ws(buf, p, e)
                        if p < e and buf[p] == 44:
                            p = p + 1
                            if p < e and buf[p] <= 32:
                                p = _ws(buf, p, e)
                        elif p < e and buf[p] == 125:
                            p = p + 1
                            if p < e and buf[p] <= 32:
                                p = _ws(buf, p, e)
                            break
                        else:
                            good = False
                    if not good:
                        break
                    if iseen != 7:
                        good = False
                        break
                    cursor += 1
                    count += 1
                    if count > MAX_ITEMS:
                        good = False
                        break
                    if p < e and buf[p] == 44:
                        p = p + 1
                        if p < e and buf[p] <= 32:
                            p = _ws(buf, p, e)
                    elif p < e and buf[p] == 93:
                        p += 1
                        break
                    else:
                        good = False
                if not good:
                    break
                row[16] = count
            else:  # the nested objects
                if buf[p] != 123:
                    good = False
                    break
                if key == 1:
                    lo, hi = W_HOSPITAL, W_PATIENT
                elif key == 2:
                    lo, hi = W_PATIENT, W_VISIT
                elif key == 3:
                    lo, hi = W_VISIT, W_DIAGNOSIS
                else:
                    lo, hi = W_DIAGNOSIS, W_ITEM
                p = p + 1
                if p < e and buf[p] <= 32:
                    p = _ws(buf, p, e)
                oseen = 0
                while good:
                    if p >= e or buf[p] != 34:
                        good = False
                        break
                    close = _string(buf, p + 1, e)
                    if close < 0:
                        good = False
                        break
                    w = _word(buf, p + 1, close, words, word_off, lo, hi)
                    if w < 0 or oseen & (1 << (w - lo)):
                        good = False
                        break
                    oseen |= 1 << (w - lo)
                    p = close + 1
                    if p < e and buf[p] <= 32:
                        p = _ws(buf, p, e)
                    if p >= e or buf[p] != 58:
                        good = False
                        break
                    p = p + 1
                    if p < e and buf[p] <= 32:
                        p = _ws(buf, p, e)
                    if p >= e:
                        good = False
                        break
                    if w == W_HOSPITAL + 1:  # level: the JSON integer 1, 2 or 3
                        v, after = _small_int(buf, p, e)
                        if v < 1 or v > 3:
                            good = False
                            break
                        row[2] = v
                        p = after
                    elif (w == W_PATIENT + 1 or w == W_PATIENT + 2) and _is_null(buf, p, e, words, word_off):
                        p += 4  # scheme, category: null is absent
                    else:  # a string
                        if buf[p] != 34:
                            good = False
                            break
                        close, n = _text(buf, p + 1, e)
                        if close < 0:
                            good = False
                            break
                        if w != W_HOSPITAL and n != close - p - 1:
                            good = False  # only the hospital id may be more than ASCII here
                            break
                        if w == W_HOSPITAL:  # id: 1–128 characters
                            if n < 1 or n > 128 or _padded(buf, p + 1, close):
                                good = False
                                break
                        elif w == W_PATIENT:  # person_id: its checks come after the scan
                            row[3] = p + 1
                            row[4] = close
                        elif w == W_PATIENT + 1:
                            row[5] = _word(buf, p + 1, close, words, word_off, W_SCHEME, W_CATEGORY) - W_SCHEME
                            if row[5] < 0:
                                good = False
                                break
                        elif w == W_PATIENT + 2:
                            row[6] = _word(buf, p + 1, close, words, word_off, W_CATEGORY, W_VISIT_TYPE) - W_CATEGORY
                            if row[6] < 0:
                                good = False
                                break
                        elif w == W_VISIT:
                            row[7] = _word(buf, p + 1, close, words, word_off, W_VISIT_TYPE, W_NULL) - W_VISIT_TYPE
                            if row[7] < 0:
                                good = False
                                break
                        elif w == W_VISIT + 1 or w == W_VISIT + 2:
                            d = _date(buf, p + 1, close)
                            if d < 0:
                                good = False
                                break
                            row[8 if w == W_VISIT + 1 else 9] = d
                        else:  # diagnosis.primary: 1–32 characters, not all blank
                            blank = True
                            for j in range(p + 1, close):
                                if buf[j] != 32:
                                    blank = False
                                    break
                            if n < 1 or n > 32 or blank:
                                good = False
                                break
                            row[10] = p + 1
                            row[11] = close
                        p = close + 1
                    if p < e and buf[p] <= 32:
                        p = _ws(buf, p, e)
                    if p < e and buf[p] == 44:
                        p = p + 1
                        if p < e and buf[p] <= 32:
                            p = _ws(buf, p, e)
                    elif p < e and buf[p] == 125:
                        p += 1
                        break
                    else:
                        good = False
                if not good:
                    break
                # required keys: hospital id+level, patient person_id, visit all three, diagnosis primary
                if (key == 1 and oseen != 3) or (key == 2 and (oseen & 1) == 0) or (key == 3 and oseen != 7) or (
                    key == 4 and oseen != 1
                ):
                    good = False
                    break
            if p < e and buf[p] <= 32:
                p = _ws(buf, p, e)
            if p < e and buf[p] == 44:
                p = p + 1
                if p < e and buf[p] <= 32:
                    p = _ws(buf, p, e)
            elif p < e and buf[p] == 125:
                p = p + 1
                if p < e and buf[p] <= 32:
                    p = _ws(buf, p, e)
                if p != e:
                    good = False  # anything after the object
                break
            else:
                good = False
        # every key but treatment and sessions is required; items 1 to MAX_ITEMS; admitted ≤ discharged
        if good and (seen | (1 << 5) | (1 << 6)) == 255 and row[16] >= 1 and row[8] <= row[9]:
            ok[k] = True
        else:
            cursor = first_item
    return cursor


@kernel
def _check_kernel(
    buf: U8, ok: npt.NDArray[np.bool_], claim: I64, item_code: I64, effective_from: I64, catalog: CatalogTable,
    person: I64, version: I64, age: I64, item_row: I64,
) -> None:
    """The checks after the claim's own (SPEC §6 order): person id, schedule, catalog codes, for ok lines.

    A line that fails any of them is no longer ok (the per-line path writes its error). For the others:
    person[k] the person id as a number (17 digits × 11 + check value, x = X), version[k], age[k] on
    admission, item_row[i] the global catalog row of each item.
    """
    for k in range(ok.shape[0]):
        if not ok[k]:
            continue
        row = claim[k]
        s = row[3]
        if row[4] - s != 18 or row[5] < 0:  # a missing scheme is the per-line path's invalid_claim
            ok[k] = False
            continue
        number = person_number(buf, s)  # the checks the per-line reader runs (claims.checks)
        if number < 0:
            ok[k] = False
            continue
        born = birth_day(buf, s)
        ad = row[8]
        if born < 0 or born > ad:
            ok[k] = False
            continue
        v = version_in_force(effective_from, row[9])
        if v < 0:
            ok[k] = False
            continue
        known = True
        for i in range(row[15], row[15] + row[16]):
            found = catalog_row(buf, item_code[i, 0], item_code[i, 1], v, catalog)
            if found < 0:
                known = False
                break
            item_row[i] = found
        if not known:
            ok[k] = False
            continue
        person[k] = number
        version[k] = v
        age[k] = whole_years(born, ad)


@dataclass
class ScannedLines:
    """The scanner's columns for a block of lines; only rows where ok is set hold values."""

    ok: npt.NDArray[np.bool_]
    claim: I64
    """[line, 17] as _scan_kernel documents."""
    person: I64
    version: I64
    age: I64
    item_row: I64
    item_qty: I64
    item_price: I64


def scan_lines(buf: U8, starts: I64, ends: I64, tables: Tables, enabled: bool = True) -> ScannedLines:
    """Scans and checks lines [starts[k], ends[k]) of buf. enabled=False: no line is ok (all go per line)."""
    n = starts.shape[0]
    ok = np.zeros(n, dtype=np.bool_)
    claim = np.zeros((n, 17), dtype=np.int64)
    person = np.zeros(n, dtype=np.int64)
    version = np.zeros(n, dtype=np.int64)
    age = np.zeros(n, dtype=np.int64)
    if not enabled or n == 0 or not jit.want(n):  # a few lines: the per-line readers alone (jit.SMALL)
        empty = np.zeros(0, dtype=np.int64)
        return ScannedLines(ok, claim, person, version, age, empty, empty, empty)
    capacity = int(np.count_nonzero(buf == 123))  # every item is an object: at most one per '{'
    item_code = np.empty((capacity, 2), dtype=np.int64)
    item_qty = np.empty(capacity, dtype=np.int64)
    item_price = np.empty(capacity, dtype=np.int64)
    used = _scan_kernel(buf, starts, ends, WORDS, WORD_OFF, ok, claim, item_code, item_qty, item_price)
    index = catalog_index(tables)
    item_row = np.empty(used, dtype=np.int64)
    _check_kernel(buf, ok, claim, item_code, index.effective_from, index.table, person, version, age, item_row)
    return ScannedLines(ok, claim, person, version, age, item_row, item_qty[:used], item_price[:used])


@kernel
def _split_kernel(buf: U8, newlines: I64, starts: I64, ends: I64) -> int:
    """Lines of a block (ends include the newline); blank lines (bytes.strip() empty) are left out."""
    n = 0
    s = 0
    size = buf.shape[0]
    for j in range(newlines.shape[0] + 1):
        e = newlines[j] + 1 if j < newlines.shape[0] else size
        if e <= s:
            continue
        p = s
        while p < e:
            c = buf[p]
            if not (c == 32 or c == 9 or c == 10 or c == 13 or c == 11 or c == 12):
                break
            p += 1
        if p < e:
            starts[n] = s
            ends[n] = e
            n += 1
        s = e
    return n


def split_lines(buf: U8) -> tuple[I64, I64]:
    """The non-blank lines of a block of bytes as (starts, ends), as reading a file line by line gives them."""
    newlines = np.flatnonzero(buf == 10).astype(np.int64)
    jit.want(newlines.shape[0])
    starts = np.empty(newlines.shape[0] + 1, dtype=np.int64)
    ends = np.empty(newlines.shape[0] + 1, dtype=np.int64)
    n = _split_kernel(buf, newlines, starts, ends)
    return starts[:n], ends[:n]


@kernel
def _intern_kernel(buf: U8, start: I64, end: I64, code: I64, first: I64) -> int:
    """Dictionary codes of the byte strings buf[start[i]:end[i]] (start < 0: none, code -1), numbered on
    first sight; first[c] is where code c was first seen. Returns the number of distinct strings."""
    size = 16
    while size < 2 * start.shape[0] + 2:
        size *= 2
    mask = size - 1
    slots = np.full(size, -1, dtype=np.int64)
    count = 0
    for i in range(start.shape[0]):
        s = start[i]
        if s < 0:
            code[i] = -1
            continue
        e = end[i]
        slot = code_hash(buf, s, e, 0) & mask
        while True:
            c = slots[slot]
            if c < 0:
                slots[slot] = count
                first[count] = i
                code[i] = count
                count += 1
                break
            f = first[c]
            fs = start[f]
            if end[f] - fs == e - s and same_bytes(buf, s, buf, fs, e - s):
                code[i] = c
                break
            slot = (slot + 1) & mask
    return count


def intern_spans(buf: U8, start: I64, end: I64) -> tuple[I64, I64]:
    """(code per span, -1 where start < 0; the index of each distinct string's first span)."""
    code = np.empty(start.shape[0], dtype=np.int64)
    first = np.empty(start.shape[0], dtype=np.int64)
    count = _intern_kernel(buf, start, end, code, first)
    return code, first[:count]


@kernel
def _gather_kernel(src: U8, start: I64, off: I64, out: U8) -> None:
    for i in range(start.shape[0]):
        s = start[i]
        if s < 0:
            continue
        a = off[i]
        for j in range(off[i + 1] - a):
            out[a + j] = src[s + j]


def gather_spans(src: U8, start: I64, off: I64, out: U8) -> None:
    """out[off[i]:off[i + 1]] = src[start[i]:…] for each i with start[i] ≥ 0 (the others are left)."""
    _gather_kernel(src, start, off, out)
