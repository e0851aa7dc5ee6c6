"""Staff accounts: creating users, signing in (with the lock-out), sessions and their CSRF tokens.

Sessions are server-side: a row per session in ``web_sessions``, found by the
SHA-256 of the random token the browser holds in its cookie; signing out ends
the row, so a copied cookie stops working at once. Services flush; callers commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.errors import ServiceError

from .models import LANGUAGES, STAFF_ROLES, LoginAttempt, StaffUser, WebSession

MAX_FAILURES = 5
"""Failed sign-ins within FAILURE_WINDOW that lock an account ..."""
FAILURE_WINDOW = dt.timedelta(minutes=15)
LOCK_TIME = dt.timedelta(minutes=15)
"""... for this long after the last of them."""
SESSION_LIFETIME = dt.timedelta(hours=10)
"""A working day: a session ends at the latest this long after sign-in."""

USERNAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
DISTRICT = re.compile(r"\d{2}|\d{4}|\d{6}")
MIN_PASSWORD = 8

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the name is unknown (the same time as a wrong password); made on
    first use, not at import, where it cost `serve`'s start ~0.1-0.5 s."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class SignedIn:
    """A valid session: who, and the CSRF token its forms carry."""

    username: str
    role: str
    district: str | None
    language: str | None
    csrf_token: str
    funds: frozenset[str] | None = None
    """An insurer limited to these funds (None: every fund), as an insurer API key."""

    @property
    def principal(self) -> Principal:
        """The caller as the service functions know it (the same ones the API calls)."""
        return Principal(key_id="web", role=Role(self.role), district=self.district, user=self.username,
                         funds=self.funds)


class SignInRefused(Exception):
    """Wrong username or password, or a locked account (``locked_until`` set)."""

    def __init__(self, locked_until: dt.datetime | None = None) -> None:
        super().__init__("locked" if locked_until else "wrong username or password")
        self.locked_until = locked_until


@dataclass(frozen=True)
class SignInResult:
    """A sign-in's outcome: the cookie token and the user, or why it was refused. Returned, not raised,
    so the caller commits the attempt's record either way."""

    token: str | None = None
    user: SignedIn | None = None
    refused: SignInRefused | None = None

    def accepted(self) -> tuple[str, SignedIn]:
        """(token, user), or the refusal raised."""
        if self.refused is not None or self.token is None or self.user is None:
            raise self.refused or SignInRefused()
        return self.token, self.user


def _funds(stored: str | None) -> frozenset[str] | None:
    return frozenset(stored.split(",")) if stored else None


def _check_user_fields(
    username: str, role: str, district: str | None, password: str, funds: list[str] | None = None
) -> None:
    errors = []
    if not USERNAME.fullmatch(username):
        errors.append({"field": "name", "message": "1-64 letters, digits, '_', '.' or '-'"})
    if role not in STAFF_ROLES:
        errors.append({"field": "role", "message": f"must be one of {', '.join(STAFF_ROLES)}"})
    if district is not None and not DISTRICT.fullmatch(district):
        errors.append({"field": "district", "message": "a 行政区划代码 prefix of 2, 4 or 6 digits, e.g. 2301"})
    if district is not None and role != "reviewer":
        errors.append({"field": "district", "message": "only reviewers are scoped to a district"})
    if funds and role != "insurer":
        errors.append({"field": "fund", "message": "only insurers are limited to funds"})
    if funds and any(not f or "," in f for f in funds):
        errors.append({"field": "fund", "message": "a fund id, without commas"})
    if len(password) < MIN_PASSWORD:
        errors.append({"field": "password", "message": f"at least {MIN_PASSWORD} characters"})
    if errors:
        raise ServiceError(400, "invalid_request", "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                           errors=errors)


def create_user(
    session: Session, username: str, role: str, password: str, *, district: str | None = None,
    funds: list[str] | None = None, now: dt.datetime | None = None,
) -> StaffUser:
    """A new staff account with an argon2id hash of the password; 409 if the name is taken.

    ``funds``: an insurer limited to these funds (checked against the funds that exist by the caller)."""
    _check_user_fields(username, role, district, password, funds)
    if session.get(StaffUser, username) is not None:
        raise ServiceError(409, "user_exists", f"a user named {username!r} exists already")
    now = now or dt.datetime.now(dt.UTC)
    user = StaffUser(
        username=username, role=role, district=district, password_hash=_hasher.hash(password),
        funds=",".join(sorted(set(funds))) if funds else None,
        language=None, created_at=now, password_changed_at=now,
    )
    session.add(user)
    session.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def locked_until(session: Session, username: str, now: dt.datetime) -> dt.datetime | None:
    """When the account's lock ends, if it is locked now: MAX_FAILURES failures since the last
    success, all within FAILURE_WINDOW, lock it for LOCK_TIME after the last of them."""
    last_success = session.scalar(
        select(LoginAttempt.at).where(LoginAttempt.username == username, LoginAttempt.succeeded.is_(True))
        .order_by(LoginAttempt.at.desc()).limit(1)
    )
    query = select(LoginAttempt.at).where(LoginAttempt.username == username, LoginAttempt.succeeded.is_(False))
    if last_success is not None:
        query = query.where(LoginAttempt.at > last_success)
    failures = list(session.scalars(query.order_by(LoginAttempt.at.desc()).limit(MAX_FAILURES)))
    if len(failures) < MAX_FAILURES or failures[0] - failures[-1] > FAILURE_WINDOW:
        return None
    until = failures[0] + LOCK_TIME
    return until if until > now else None


def sign_in(
    session: Session, username: str, password: str, *, client: str | None = None,
    now: dt.datetime | None = None,
) -> SignInResult:
    """Checks the password and opens a session (the cookie token and the signed-in user).

    Refused for an unknown user, a wrong password or a locked account (a locked
    account's password is not even checked); a failure is recorded, so commit the
    session either way. The account row is read FOR UPDATE, so one user's
    concurrent attempts are counted one at a time.
    """
    now = now or dt.datetime.now(dt.UTC)
    user = session.scalars(
        select(StaffUser).where(StaffUser.username == username).with_for_update()
    ).one_or_none() if USERNAME.fullmatch(username) else None
    if user is None:
        _verify(_dummy_hash(), password)
        return SignInResult(refused=SignInRefused())
    until = locked_until(session, username, now)
    if until is not None:
        return SignInResult(refused=SignInRefused(until))
    ok = _verify(user.password_hash, password)
    session.add(LoginAttempt(username=username, at=now, succeeded=ok, client=(client or "")[:64] or None))
    session.flush()
    if not ok:
        return SignInResult(refused=SignInRefused(locked_until(session, username, now)))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(WebSession(
        token_hash=_token_hash(token), username=username, csrf_token=csrf, created_at=now,
        expires_at=now + SESSION_LIFETIME, ended_at=None,
    ))
    session.flush()
    return SignInResult(token, SignedIn(user.username, user.role, user.district, user.language, csrf,
                                        _funds(user.funds)))


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def session_user(session: Session, token: str | None, now: dt.datetime | None = None) -> SignedIn | None:
    """The signed-in user of a cookie token, or None (no, unknown, ended or expired session)."""
    if not token or len(token) > 200:
        return None
    now = now or dt.datetime.now(dt.UTC)
    row = session.execute(
        select(WebSession, StaffUser).join(StaffUser, StaffUser.username == WebSession.username)
        .where(WebSession.token_hash == _token_hash(token))
    ).one_or_none()
    if row is None:
        return None
    web, user = row
    if web.ended_at is not None or web.expires_at <= now:
        return None
    return SignedIn(user.username, user.role, user.district, user.language, web.csrf_token, _funds(user.funds))


def sign_out(session: Session, token: str | None, now: dt.datetime | None = None) -> None:
    """Ends the session of this token (a no-op for an unknown one)."""
    if not token:
        return
    row = session.get(WebSession, _token_hash(token))
    if row is not None and row.ended_at is None:
        row.ended_at = now or dt.datetime.now(dt.UTC)
        session.flush()


def csrf_ok(expected: str, given: str | None) -> bool:
    """The form's token equals the session's (compared in constant time)."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def set_language(session: Session, username: str, language: str | None) -> None:
    """The user's page language (zh_CN or en; None: follow the browser)."""
    if language is not None and language not in LANGUAGES:
        raise ServiceError(400, "invalid_request", f"language must be one of {', '.join(LANGUAGES)}")
    user = session.get(StaffUser, username)
    if user is None:
        raise ServiceError(404, "not_found", f"no user {username}")
    user.language = language
    session.flush()


def list_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.username)))
