"""Claims: the JSON of SPEC §3, validated and turned into the engine's columnar batch."""

from .columns import BatchBuilder
from .models import Claim
from .parse import (
    ERROR_ORDER,
    INVALID_CLAIM,
    INVALID_PERSON_ID,
    NO_SCHEDULE,
    NO_STANDARD,
    UNKNOWN_ITEM,
    ClaimError,
    DuplicateKeyError,
    PreparedClaim,
    decode_json,
    prepare_claim,
    validate_claim,
)

__all__ = [
    "ERROR_ORDER",
    "INVALID_CLAIM",
    "INVALID_PERSON_ID",
    "NO_SCHEDULE",
    "NO_STANDARD",
    "UNKNOWN_ITEM",
    "BatchBuilder",
    "Claim",
    "ClaimError",
    "DuplicateKeyError",
    "PreparedClaim",
    "decode_json",
    "prepare_claim",
    "validate_claim",
]
