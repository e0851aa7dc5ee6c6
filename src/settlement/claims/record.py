"""The validated claim as plain values: what every later step reads.

Both readers — the pydantic model (the contract, and every error message)
and the msgspec fast path of the batch CLI — produce this record, so the
person-id, schedule and catalog checks and the batch builder exist once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .models import Claim


@dataclass(slots=True)
class ClaimRecord:
    claim_id: str
    hospital_id: str
    level: int | None
    """None only at the counter, until the hospital registry's level is bound (prepare_claim)."""
    person_id: str
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

    @classmethod
    def from_model(cls, claim: Claim) -> ClaimRecord:
        return cls(
            claim_id=claim.claim_id,
            hospital_id=claim.hospital.id,
            level=claim.hospital.level,
            person_id=claim.patient.person_id,
            scheme=claim.patient.scheme,
            category=claim.patient.category,
            visit_type=claim.visit.type,
            admitted=claim.visit.admitted,
            discharged=claim.visit.discharged,
            diagnosis=claim.diagnosis.primary,
            treatment=claim.treatment,
            sessions=claim.sessions,
            codes=[item.code for item in claim.items],
            quantity=np.array([item.quantity for item in claim.items], dtype=np.int64),
            unit_price=np.array([item.unit_price for item in claim.items], dtype=np.int64),
        )
