"""What "the same claim" means for idempotency.

The validated claim is hashed in a canonical form: keys sorted, quantities and
prices as exact scaled integers (``"1"``, ``1`` and ``"1.0000"`` are the same),
the person id normalized, and sessions defaulted; the emergency relief flags
count when true. ``patient.scheme`` and
``patient.category`` are left out: the registry decides them, a claim may only
repeat them, so stating or omitting them does not make another claim.
"""

from __future__ import annotations

import hashlib

import orjson

from settlement.claims import Claim
from settlement.claims.person_id import normalize_person_id


def claim_hash(claim: Claim) -> str:
    data = claim.model_dump(mode="json", exclude={"patient": {"scheme", "category"}})
    patient = data["patient"]
    if claim.temporary_id is None:
        patient["person_id"] = normalize_person_id(claim.patient.person_id)
    # the emergency relief keys count only when stated true (or an unidentified patient's own), so a
    # claim hashes as it did before they existed: a replay of an earlier settlement stays a replay
    for key in ("unable_to_pay", "unidentified", "person_id"):
        if patient.get(key) in (False, None):
            patient.pop(key, None)
    if not data["visit"]["emergency"]:
        del data["visit"]["emergency"]
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
