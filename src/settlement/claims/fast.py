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

from .models import MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE
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


class _Item(msgspec.Struct, forbid_unknown_fields=True):
    code: NonEmpty
    quantity: Number
    unit_price: Number


class _Hospital(msgspec.Struct, forbid_unknown_fields=True):
    id: NonEmpty
    level: Literal[1, 2, 3]


class _Patient(msgspec.Struct, forbid_unknown_fields=True):
    person_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    scheme: Literal["resident", "employee"] | None = None
    category: (
        Literal[
            "none", "extreme_poverty", "subsistence_allowance", "registered_poor", "low_income",
            "illness_impoverished",
        ]
        | None
    ) = None


class _Visit(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["inpatient", "outpatient", "chronic_outpatient"]
    admitted: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    discharged: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class _Diagnosis(msgspec.Struct, forbid_unknown_fields=True):
    primary: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class _Claim(msgspec.Struct, forbid_unknown_fields=True):
    claim_id: NonEmpty
    hospital: _Hospital
    patient: _Patient
    visit: _Visit
    diagnosis: _Diagnosis
    items: Annotated[list[_Item], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]
    treatment: NonEmpty | None = None
    sessions: Annotated[int, msgspec.Meta(ge=1, le=366)] = 1


_decoder = msgspec.json.Decoder(_Claim)


def _not_float_safe(line: bytes) -> bool:
    return b"e-" in line or b"E-" in line or _FIVE_DECIMALS.search(line) is not None


def _plain_decimal(values: list[str]) -> np.ndarray:
    """Per string: is it digits, optionally a point and digits (ASCII only)? Vectorised."""
    try:
        raw = np.array(values, dtype=np.bytes_)
    except UnicodeEncodeError:
        return np.zeros(len(values), dtype=np.bool_)
    dots = np.strings.count(raw, b".")
    digits = np.strings.isdigit(np.strings.replace(raw, b".", b"", 1))
    edges = np.strings.startswith(raw, b".") | np.strings.endswith(raw, b".")
    ok: np.ndarray = digits & (dots <= 1) & ~edges
    return ok


def _scaled(values: list[float | str], low: float, high: float, low_inclusive: bool) -> tuple[np.ndarray, np.ndarray]:
    """Numbers × 10^4 as int64 and a per-value flag: bad form, out of range or more than 4 decimals."""
    strings = [k for k, v in enumerate(values) if v.__class__ is str]
    bad = np.zeros(len(values), dtype=np.bool_)
    if strings:
        form_ok = _plain_decimal([values[k] for k in strings])  # type: ignore[misc]
        bad[strings] = ~form_ok
        if not form_ok.all():
            values = [0.0 if bad[k] else v for k, v in enumerate(values)]
    as_float = np.array(values, dtype=np.float64)
    scaled = np.rint(as_float * 10_000)
    bad |= (scaled / 10_000 != as_float) | (as_float > high)
    bad |= (as_float < low) if low_inclusive else (as_float <= low)
    return scaled.astype(np.int64), bad


def fast_records(lines: list[bytes]) -> list[ClaimRecord | None]:
    """A record for each line the fast path is sure of; None sends the line to validate_claim."""
    decoded: list[tuple[int, _Claim, dt.date, dt.date]] = []
    for k, line in enumerate(lines):
        if _not_float_safe(line):
            continue
        try:
            c = _decoder.decode(line)
            admitted = dt.date.fromisoformat(c.visit.admitted)
            discharged = dt.date.fromisoformat(c.visit.discharged)
        except (msgspec.DecodeError, ValueError):
            continue
        if admitted <= discharged and c.diagnosis.primary.strip():
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
        )
    return out
