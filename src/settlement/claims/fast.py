"""The batch reader's fast path: msgspec decodes and checks the common claim.

Only for throughput (`settlement settle`, SPEC §8). It accepts a claim only
when the claim is certainly valid; anything it is unsure of — a decode or
type failure, a number that could not be read exactly through a float, a
value out of range — goes to the pydantic model (`validate_claim`), which is
the contract and writes every error message. Both produce a ClaimRecord, and
a differential test holds them to the same values.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

import msgspec
import numpy as np

from .checks import MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE
from .record import ClaimRecord

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Number = float | str
"""Strings are checked in bulk (_plain_decimal) rather than by a regex per value."""

# Texts a float cannot carry exactly: five or more decimals, or a negative
# exponent (which can hide many significant digits). Lines with either take
# the exact path. Lines with neither hold numbers of at most 4 decimals, and
# any such number within the limits has at most 11 significant digits, which
# a float round-trips exactly; larger ones stay above the limits as floats.
_FIVE_DECIMALS = re.compile(rb"\.[0-9]{5}")
# An escape (it may hide a refused character or a colon, see _members_ok) or the UTF-8 of a character
# models.REFUSED_CHARACTERS refuses (C1 controls, U+061C, U+200E/F, U+2028-202E, U+2066-2069): such lines
# take the exact path, which gives the error.
_NOT_PLAIN = re.compile(rb"\\|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


# gc=False: these instances hold only strings, numbers and each other — never a
# cycle — and half a million of them per chunk would otherwise wake the garbage
# collector again and again.
class _Item(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    code: NonEmpty
    quantity: Number
    unit_price: Number


class _Hospital(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: NonEmpty
    level: Literal[1, 2, 3]


class _Patient(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    person_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    scheme: Literal["resident", "employee"] | None = None
    category: (
        Literal[
            "none", "extreme_poverty", "subsistence_allowance", "registered_poor", "low_income",
            "illness_impoverished",
        ]
        | None
    ) = None
    unable_to_pay: bool = False
    unidentified: Literal[False] = False
    """An unidentified patient (true) is left to the pydantic model."""


class _Visit(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: Literal["inpatient", "outpatient", "chronic_outpatient"]
    admitted: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    discharged: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    emergency: bool = False


class _Diagnosis(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    primary: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class _Claim(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    claim_id: NonEmpty
    hospital: _Hospital
    patient: _Patient
    visit: _Visit
    diagnosis: _Diagnosis
    items: Annotated[list[_Item], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]
    treatment: NonEmpty | None = None
    sessions: Annotated[int, msgspec.Meta(ge=1, le=366)] = 1


_decoder = msgspec.json.Decoder(_Claim)


def _unsafe_lines(lines: list[bytes]) -> set[int]:
    """Indexes of the lines holding a number a float cannot carry exactly (one scan per chunk)."""
    joined = b"\n".join(lines)
    hits = [m.start() for m in _FIVE_DECIMALS.finditer(joined)]
    hits += [m.start() for m in _NOT_PLAIN.finditer(joined)]
    for marker in (b"e-", b"E-"):
        at = joined.find(marker)
        while at >= 0:
            hits.append(at)
            at = joined.find(marker, at + 1)
    if not hits:
        return set()
    ends = np.cumsum([len(line) + 1 for line in lines])
    return set(np.searchsorted(ends, hits, side="right").tolist())


def _plain_decimal(raw: np.ndarray) -> np.ndarray:
    """Per byte string: digits, optionally a point and digits? Vectorised."""
    dots = np.strings.count(raw, b".")
    digits = np.strings.isdigit(np.strings.replace(raw, b".", b"", 1))
    edges = np.strings.startswith(raw, b".") | np.strings.endswith(raw, b".")
    ok: np.ndarray = digits & (dots <= 1) & ~edges
    return ok


def _scaled(
    values: list[float | str], low: float, high: float, low_inclusive: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Numbers × 10^4 as int64 and a per-value flag: bad form, out of range or more than 4 decimals."""
    bad = np.zeros(len(values), dtype=np.bool_)
    as_float = np.zeros(len(values), dtype=np.float64)
    is_str = np.fromiter((v.__class__ is str for v in values), np.bool_, len(values))
    if is_str.all():
        try:
            raw = np.array(values, dtype=np.bytes_)
        except UnicodeEncodeError:
            return as_float.astype(np.int64), ~bad
        form_ok = _plain_decimal(raw)
        bad |= ~form_ok
        as_float = np.where(form_ok, raw, b"0").astype(np.float64)
    elif is_str.any():
        # numbers and strings in one chunk (one claim may write 2, the next "2.00"):
        # each kind is checked on its own, so a number is never left unread at 0
        scaled_all = np.zeros(len(values), dtype=np.int64)
        for part in (np.flatnonzero(is_str), np.flatnonzero(~is_str)):
            scaled_part, bad_part = _scaled([values[i] for i in part], low, high, low_inclusive)
            scaled_all[part] = scaled_part
            bad[part] = bad_part
        return scaled_all, bad
    else:
        as_float = np.array(values, dtype=np.float64)
    scaled = np.rint(as_float * 10_000)
    bad |= (scaled / 10_000 != as_float) | (as_float > high)
    bad |= (as_float < low) if low_inclusive else (as_float <= low)
    return scaled.astype(np.int64), bad


def _plain_ids(c: _Claim) -> bool:
    """The identifiers are neither blank nor padded (models.check_identifier refuses both)."""
    return all(v.strip() and v == v.strip() for v in (c.claim_id, c.hospital.id, c.patient.person_id))


def _members_ok(line: bytes, c: _Claim) -> bool:
    """No key twice (msgspec keeps the last): without escapes, the line's colons are its members plus
    the colons inside its strings. The members are counted as if every optional key holding its default
    were absent, so a line that writes a default out (``"sessions":1``) also takes the exact path."""
    strings = [c.claim_id, c.hospital.id, c.patient.person_id, c.diagnosis.primary, c.visit.admitted,
               c.visit.discharged, c.treatment or ""]
    members = 13 + 3 * len(c.items)  # claim 6, hospital 2, patient 1, visit 3, diagnosis 1; 3 an item
    members += (c.treatment is not None) + (c.sessions != 1) + (c.patient.scheme is not None)
    members += c.patient.category is not None
    colons = sum(v.count(":") for v in strings)
    colons += sum(i.code.count(":") for i in c.items)
    return line.count(b":") == members + colons


def fast_records(lines: list[bytes]) -> list[ClaimRecord | None]:
    """A record for each line the fast path is sure of; None sends the line to validate_claim."""
    decoded: list[tuple[int, _Claim, dt.date, dt.date]] = []
    unsafe = _unsafe_lines(lines)
    for k, line in enumerate(lines):
        if k in unsafe:
            continue
        try:
            c = _decoder.decode(line)
            admitted = dt.date.fromisoformat(c.visit.admitted)
            discharged = dt.date.fromisoformat(c.visit.discharged)
        except (msgspec.DecodeError, ValueError):
            continue
        if admitted <= discharged and c.diagnosis.primary.strip() and _plain_ids(c) and _members_ok(line, c):
            decoded.append((k, c, admitted, discharged))
    out: list[ClaimRecord | None] = [None] * len(lines)
    if not decoded:
        return out
    # every number of the chunk converted and checked at once
    all_items = [item for _, c, _, _ in decoded for item in c.items]
    quantity, bad_q = _scaled([i.quantity for i in all_items], 0, MAX_QUANTITY, low_inclusive=False)
    price, bad_p = _scaled([i.unit_price for i in all_items], 0, MAX_UNIT_PRICE, low_inclusive=True)
    counts = np.fromiter((len(c.items) for _, c, _, _ in decoded), np.int64, len(decoded))
    starts = np.concatenate(([0], np.cumsum(counts)))
    bad_claim = np.add.reduceat((bad_q | bad_p).astype(np.int64), starts[:-1]) > 0
    for j, (k, c, admitted, discharged) in enumerate(decoded):
        if bad_claim[j]:
            continue
        lo, hi = starts[j], starts[j + 1]
        out[k] = ClaimRecord(
            claim_id=c.claim_id,
            hospital_id=c.hospital.id,
            level=c.hospital.level,
            person_id=c.patient.person_id,
            scheme=c.patient.scheme,
            category=c.patient.category,
            visit_type=c.visit.type,
            admitted=admitted,
            discharged=discharged,
            diagnosis=c.diagnosis.primary,
            treatment=c.treatment,
            sessions=c.sessions,
            codes=[i.code for i in c.items],
            quantity=quantity[lo:hi],
            unit_price=price[lo:hi],
            emergency=c.visit.emergency,
            unable_to_pay=c.patient.unable_to_pay,
        )
    return out
