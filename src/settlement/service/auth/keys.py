"""Key format and hashing.

A key is ``stl_<key id>_<secret>``: the id (public, 12 hex) finds the row, the
whole key's SHA-256 is compared in constant time. Keys are 256-bit random, so a
fast hash is enough (there is nothing to brute-force); the key itself is never
stored and is shown once, when created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

PREFIX = "stl"


class Role(StrEnum):
    HOSPITAL = "hospital"
    REVIEWER = "reviewer"
    INSURER = "insurer"
    ADMIN = "admin"


ROLES = tuple(r.value for r in Role)


def new_key() -> tuple[str, str]:
    """(key id, full key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
