"""The validated claim as plain values: what every later step reads.

Both readers — the pydantic model (the contract, and every error message)
and the msgspec fast path of the batch CLI — produce this record, so the
person-id, schedule and catalog checks and the batch builder exist once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .models import Claim


@dataclass(slots=True)
class ClaimRecord:
    claim_id: str
    hospital_id: str
    level: int | None
    """None only at the counter, until the hospital registry's level is bound (prepare_claim)."""
    person_id: str
    """"" for an unidentified patient (see temporary_id)."""
    scheme: str | None
    category: str | None
    visit_type: str
    admitted: dt.date
    discharged: dt.date
    diagnosis: str
    treatment: str | None
    sessions: int
    codes: list[str]
    quantity: npt.NDArray[np.int64]
    """× 10^4"""
    unit_price: npt.NDArray[np.int64]
    """yuan × 10^4"""
    emergency: bool = False
    unable_to_pay: bool = False
    temporary_id: str | None = None
    """The hospital's temporary id of an unidentified patient (SPEC §3); None for an identified one."""

    @property
    def unidentified(self) -> bool:
        return self.temporary_id is not None

    @classmethod
    def from_model(cls, claim: Claim) -> ClaimRecord:
        patient = claim.patient
        identified = claim.temporary_id is None  # a Patient, not an UnidentifiedPatient
        return cls(
            claim_id=claim.claim_id,
            hospital_id=claim.hospital.id,
            level=claim.hospital.level,
            person_id=patient.person_id if identified else "",
            scheme=patient.scheme if identified else None,
            category=patient.category if identified else None,
            visit_type=claim.visit.type,
            admitted=claim.visit.admitted,
            discharged=claim.visit.discharged,
            diagnosis=claim.diagnosis.primary,
            treatment=claim.treatment,
            sessions=claim.sessions,
            codes=[item.code for item in claim.items],
            quantity=np.array([item.quantity for item in claim.items], dtype=np.int64),
            unit_price=np.array([item.unit_price for item in claim.items], dtype=np.int64),
            emergency=claim.visit.emergency,
            unable_to_pay=claim.unable_to_pay,
            temporary_id=claim.temporary_id,
        )
