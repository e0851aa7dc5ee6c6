"""What "the same claim" means for idempotency.

The validated claim is hashed in a canonical form: keys sorted, quantities and
prices as exact scaled integers (``"1"``, ``1`` and ``"1.0000"`` are the same),
the person id normalized, and sessions defaulted. ``patient.scheme`` and
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
    data["patient"]["person_id"] = normalize_person_id(claim.patient.person_id)
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
