"""Claims: the JSON of SPEC §3, validated and turned into the engine's columnar batch.

`Claim` (the pydantic model) is imported on first use: the batch CLI settles valid claims without it.
"""

from typing import TYPE_CHECKING, Any

from .columns import BatchBuilder
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

if TYPE_CHECKING:
    from .models import Claim

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


def __getattr__(name: str) -> Any:
    if name == "Claim":
        from .models import Claim

        return Claim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
