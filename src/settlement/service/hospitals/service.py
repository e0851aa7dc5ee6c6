"""Hospital registry rules: entries replaced wholesale and audited; the counter's hospital check."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.claims import Claim
from settlement.claims.models import check_identifier
from settlement.service.errors import ServiceError

from .models import Hospital, HospitalChange
from .repository import level_of, lock_hospital
from .schemas import HospitalIn


def checked_hospital_id(value: str) -> str:
    """A registry key: an identifier (models.check_identifier) of at most 128 characters; else 422."""
    try:
        if len(value) > 128:
            raise ValueError("must be at most 128 characters")
        return check_identifier(value)
    except ValueError as exc:
        raise ServiceError(
            422, "invalid_request", f"hospital id {exc}", errors=[{"field": "hospital_id", "in": "path",
                                                                   "message": str(exc)}]
        ) from None


def put_hospital(
    session: Session, hospital_id: str, data: HospitalIn, actor: str, now: dt.datetime
) -> tuple[Hospital, bool]:
    """Registers the hospital or replaces its entry; (row, created). A change is recorded (who, when,
    before, after) under the row's lock; a PUT that changes nothing records nothing."""
    after: dict[str, Any] = data.model_dump(mode="json")
    row, _ = lock_hospital(session, checked_hospital_id(hospital_id), after, now)
    before = session.scalar(  # the last record's "after", read under the lock: what the entry was
        select(HospitalChange.after)
        .where(HospitalChange.hospital_id == row.hospital_id)
        .order_by(HospitalChange.id.desc())
        .limit(1)
    )
    if before == after:
        return row, False
    row.name, row.level, row.district = data.name, data.level, data.district
    row.updated_at = now
    session.add(HospitalChange(hospital_id=row.hospital_id, at=now, actor=actor, before=before, after=after))
    session.flush()
    return row, before is None


def bind_level(claim: Claim, level: int | None) -> Claim:
    """The claim at its hospital's registered level (the one the engine uses at the counter).

    ``level`` is the registry's (None: not registered). 422 hospital_not_registered, or
    hospital_level_mismatch when the claim states another level; a claim may leave the level out.
    """
    hospital = claim.hospital
    if level is None:
        raise ServiceError(
            422, "hospital_not_registered", f"hospital {hospital.id} is not in the hospital registry",
            claim_id=claim.claim_id,
        )
    if hospital.level is not None and hospital.level != level:
        raise ServiceError(
            422, "hospital_level_mismatch",
            f"the claim states level {hospital.level}; hospital {hospital.id} is level {level} in the registry",
            claim_id=claim.claim_id,
        )
    if hospital.level == level:
        return claim
    return claim.model_copy(update={"hospital": hospital.model_copy(update={"level": level})})


def registered_claim(session: Session, claim: Claim) -> Claim:
    """bind_level with the level read from the registry (the counter's portable path)."""
    return bind_level(claim, level_of(session, claim.hospital.id))
