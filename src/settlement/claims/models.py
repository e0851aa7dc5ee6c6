"""The claim JSON of SPEC §3 as pydantic models.

Money inputs (quantity, unit_price) may be JSON numbers or plain decimal
strings; both are read exactly and stored scaled by 10^4, so the engine never
sees a float. Unknown keys are refused: a misspelt optional key such as
`treatmnet` would otherwise silently change the pathway.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from settlement.money import QTY_SCALE, decimal_places

from .checks import MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE

PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def _exact(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a number or a decimal string, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # orjson hands over floats only for texts the caller has checked to
        # carry at most 4 decimals and no exponent; repr() gives that text back.
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, str):
        if not PLAIN_DECIMAL.fullmatch(value):
            raise ValueError(f"not a plain decimal string: {value!r}")
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - regex guards it
            raise ValueError(f"not a plain decimal string: {value!r}") from exc
    raise ValueError(f"must be a number or a decimal string, got {type(value).__name__}")


_SHORT_DECIMAL = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,4}))?")


def _scaled(value: Any, low: int, high: int, low_inclusive: bool) -> int:
    """The value × 10^4 as an exact integer; ValueError with the field's message otherwise.

    The two shapes nearly every claim uses — a JSON integer and a decimal string
    with at most 4 decimals — are scaled with integer arithmetic when in range;
    everything else (and anything out of range, for its message) goes through
    Decimal. Both give the same integer (tests/claims/test_scaled.py).
    """
    kind = type(value)
    scaled: int | None = None
    if kind is int:
        scaled = value * QTY_SCALE
    elif kind is str:
        match = _SHORT_DECIMAL.fullmatch(value)
        if match is not None:
            whole, fraction = match.groups()
            scaled = int(whole) * QTY_SCALE + (int(fraction.ljust(4, "0")) if fraction else 0)
    if scaled is not None and low * QTY_SCALE < scaled <= high * QTY_SCALE:
        return scaled
    return _scaled_exact(value, low, high, low_inclusive)


def _scaled_exact(value: Any, low: int, high: int, low_inclusive: bool) -> int:
    number = _exact(value)
    if decimal_places(number) > 4:
        raise ValueError("more than 4 decimals")
    if number < low or (number == low and not low_inclusive) or number > high:
        bound = "≥" if low_inclusive else ">"
        raise ValueError(f"must be {bound} {low} and ≤ {high:,}, got {number}")
    return int(number * QTY_SCALE)


def _quantity(value: Any) -> int:
    return _scaled(value, 0, MAX_QUANTITY, low_inclusive=False)


def _unit_price(value: Any) -> int:
    return _scaled(value, 0, MAX_UNIT_PRICE, low_inclusive=True)


def _iso_date(value: Any) -> dt.date:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError(f"must be an ISO date YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not a real date: {value}") from exc


def _json_level(value: Any) -> Any:
    # Literal[1, 2, 3] alone lets `true` (== 1) and `2.0` through
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be 1, 2 or 3 as a JSON integer, got {value!r}")
    return value


REFUSED_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters no identifier or code may hold: control characters (C0, DEL, C1), the line and paragraph
separators, and the bidirectional marks, embeddings, overrides and isolates (they make a text display
as another: ``"A\u202e1B"`` shows as ``A B1``)."""


def refused_character(value: str) -> str | None:
    """Why ``value`` may not be an identifier's or a code's text (a refused character), or None."""
    found = REFUSED_CHARACTERS.search(value)
    return None if found is None else f"holds the character U+{ord(found.group()):04X}, which is not allowed"


def check_identifier(value: str) -> str:
    """An identifier (claim id, hospital id, person id, key id …) as it is: refused, never trimmed, when it
    is blank, has white space at either end, or holds a refused character (REFUSED_CHARACTERS)."""
    why = refused_character(value)
    if why is not None:
        raise ValueError(why)
    if not value.strip():
        raise ValueError("must not be blank")
    if value != value.strip():
        raise ValueError("must not begin or end with white space")
    return value


def _code(value: str) -> str:
    why = refused_character(value)
    if why is not None:
        raise ValueError(why)
    return value


ScaledQuantity = Annotated[int, BeforeValidator(_quantity)]
ScaledPrice = Annotated[int, BeforeValidator(_unit_price)]
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_code)]
Identifier = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_identifier)]

Scheme = Literal["resident", "employee"]
Category = Literal[
    "none",
    "extreme_poverty",
    "subsistence_allowance",
    "registered_poor",
    "low_income",
    "illness_impoverished",
]
VisitType = Literal["inpatient", "outpatient", "chronic_outpatient"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Hospital(_Strict):
    id: Identifier
    level: Annotated[Literal[1, 2, 3], BeforeValidator(_json_level)] | None = None
    """Required in a batch (prepare_claim); at the counter the hospital registry's level is used and a
    claim may leave it out."""


class Patient(_Strict):
    """An identified patient (every patient but an unidentified one)."""

    person_id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_identifier)]
    scheme: Scheme | None = None
    category: Category | None = None
    unable_to_pay: bool = False
    """The hospital found that the patient cannot pay (无力支付)."""
    unidentified: bool = False
    """Only `false` reaches this model; `true` is an UnidentifiedPatient."""


class UnidentifiedPatient(_Strict):
    """A patient whose identity is not known (身份不明), under the hospital's temporary id (SPEC §3)."""

    unidentified: Literal[True]
    temporary_id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_identifier)]
    # Keys an unidentified patient must not have: read only to name them (Claim._unidentified_patient)
    person_id: Any = None
    scheme: Any = None
    category: Any = None
    unable_to_pay: Any = None


_NOT_UNIDENTIFIED = ("person_id", "scheme", "category", "unable_to_pay")
PATIENT_TAG = "patient:"
"""Prefix of the tags below, which the error paths leave out (parse._field_path)."""


def _patient_kind(value: Any) -> str:
    unidentified = value.get("unidentified") if isinstance(value, dict) else getattr(value, "unidentified", None)
    return f"{PATIENT_TAG}unidentified" if unidentified is True else f"{PATIENT_TAG}identified"


AnyPatient = Annotated[
    Annotated[Patient, Tag(f"{PATIENT_TAG}identified")]
    | Annotated[UnidentifiedPatient, Tag(f"{PATIENT_TAG}unidentified")],
    Discriminator(_patient_kind),
]


class Visit(_Strict):
    type: VisitType
    admitted: IsoDate
    discharged: IsoDate
    emergency: bool = False
    """Emergency care of a critical condition (急危重伤病)."""

    @model_validator(mode="after")
    def _ordered(self) -> Visit:
        if self.admitted > self.discharged:
            raise ValueError("admitted is after discharged")
        return self


class Diagnosis(_Strict):
    primary: Annotated[str, Field(min_length=1, max_length=32, pattern=r"\S"), AfterValidator(_code)]


class Item(_Strict):
    code: NonEmpty
    quantity: ScaledQuantity
    unit_price: ScaledPrice


class Claim(_Strict):
    claim_id: Identifier
    hospital: Hospital
    patient: AnyPatient
    visit: Visit
    diagnosis: Diagnosis
    treatment: NonEmpty | None = None
    sessions: Annotated[int, Field(ge=1, le=366)] = 1
    items: Annotated[list[Item], Field(min_length=1, max_length=MAX_ITEMS)]

    @model_validator(mode="after")
    def _unidentified_patient(self) -> Claim:
        patient = self.patient
        if isinstance(patient, UnidentifiedPatient):
            extra = [key for key in _NOT_UNIDENTIFIED if key in patient.model_fields_set]
            if extra:
                raise ValueError(f"an unidentified patient has only temporary_id, not {', '.join(extra)}")
            if not self.visit.emergency:
                raise ValueError("an unidentified patient's claim must be an emergency")
        return self

    @property
    def policy_year(self) -> int:
        return self.visit.discharged.year

    @property
    def temporary_id(self) -> str | None:
        """The hospital's temporary id of an unidentified patient; None for an identified one."""
        return self.patient.temporary_id if isinstance(self.patient, UnidentifiedPatient) else None

    @property
    def unable_to_pay(self) -> bool:
        return isinstance(self.patient, Patient) and self.patient.unable_to_pay
