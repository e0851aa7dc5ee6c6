"""Creating, revoking and checking keys (services flush; callers commit)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.service.db import pg_connection, pg_execute
from settlement.service.errors import ServiceError, forbidden, unauthorized

from .keys import Role, hash_key, key_id_of, matches, new_key
from .models import ApiKey


@dataclass(frozen=True)
class Principal:
    """Who is calling: key id, role, and the hospital (hospital keys) or funds (insurer keys).

    A staff member signed in on the web pages is a principal too (``user`` set);
    a reviewer may be scoped to a district (a 行政区划代码 prefix such as ``2301``).
    """

    key_id: str
    role: Role
    hospital_id: str | None = None
    funds: frozenset[str] | None = None
    district: str | None = None
    """Only persons registered in this district (prefix) and their settlements; None: the whole region."""
    user: str | None = None
    """The staff account's username, for callers signed in on the web pages."""

    def sees_hospital(self, hospital_id: str) -> bool:
        return self.role != Role.HOSPITAL or self.hospital_id == hospital_id

    def sees_fund(self, fund: str) -> bool:
        return self.funds is None or fund in self.funds

    def sees_district(self, district: str | None) -> bool:
        return self.district is None or (district is not None and district.startswith(self.district))

    @property
    def actor(self) -> str:
        """Who did it, as records store it: the staff username, else the key id."""
        return self.user or self.key_id


def create_key(
    session: Session,
    role: Role | str,
    *,
    hospital_id: str | None = None,
    funds: list[str] | None = None,
    label: str | None = None,
) -> str:
    """Stores a new key (hashed) and returns it; the only time it is seen."""
    role = Role(role)
    if role == Role.HOSPITAL and not hospital_id:
        raise ServiceError(400, "invalid_request", "a hospital key needs a hospital id")
    if role != Role.HOSPITAL and hospital_id:
        raise ServiceError(400, "invalid_request", "only hospital keys are bound to a hospital")
    if funds and role != Role.INSURER:
        raise ServiceError(400, "invalid_request", "only insurer keys are limited to funds")
    key_id, key = new_key()
    session.add(
        ApiKey(
            key_id=key_id,
            key_hash=hash_key(key),
            role=role.value,
            hospital_id=hospital_id,
            funds=",".join(sorted(set(funds))) if funds else None,
            label=label,
            created_at=dt.datetime.now(dt.UTC),
        )
    )
    session.flush()
    return key


def revoke_key(session: Session, key_id: str) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = dt.datetime.now(dt.UTC)
        session.flush()
    return True


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


KEY_SQL = "SELECT key_hash, role, hospital_id, funds, revoked_at FROM api_keys WHERE key_id = %s"


def check_role(principal: Principal, roles: tuple[Role, ...]) -> Principal:
    """The principal if its key has one of these roles; 403 forbidden naming them otherwise."""
    if principal.role not in roles:
        names = ", ".join(r.value for r in roles)
        raise forbidden(f"a {principal.role.value} key may not call this; allowed: {names}")
    return principal


def bearer_key(header: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; 401 without one."""
    if not header:
        raise unauthorized()
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("use Authorization: Bearer <key>")
    return token.strip()


def authenticate(session: Session, key: str) -> Principal:
    key_id = key_id_of(key)
    if key_id is None:
        raise unauthorized("the API key is malformed")
    pg = pg_connection(session)
    if pg is not None:  # every request checks its key: plain SQL, no ORM object
        return principal_from_row(key, pg_execute(pg, KEY_SQL, (key_id,)).fetchone())
    row = session.get(ApiKey, key_id)
    found = None if row is None else (row.key_hash, row.role, row.hospital_id, row.funds, row.revoked_at)
    return principal_from_row(key, found)


def principal_from_row(key: str, found: tuple[Any, ...] | None) -> Principal:
    """The caller of a key whose row (key_hash, role, hospital_id, funds, revoked_at) was read; 401 if not valid."""
    key_id = key_id_of(key)
    if key_id is None:
        raise unauthorized("the API key is malformed")
    if found is None or found[4] is not None or not matches(key, found[0]):
        raise unauthorized("the API key is not valid")
    _hash, role, hospital_id, funds, _revoked = found
    return Principal(
        key_id=key_id,
        role=Role(role),
        hospital_id=hospital_id,
        funds=frozenset(funds.split(",")) if funds else None,
    )
