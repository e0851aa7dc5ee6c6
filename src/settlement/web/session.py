"""Who is signed in: the session cookie, the CSRF check and the page dependency.

A page needs a staff session (cookie ``stl_session``, HttpOnly, SameSite=Strict,
Secure over https); an API key — a hospital's or any other — opens no page.
Every POST from a page carries the session's CSRF token (form field
``csrf_token``); the sign-in form, which comes before any session, carries a
token that must equal the one in its own short-lived cookie (double submit).
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData

from settlement.service.accounts.service import SignedIn, csrf_ok, session_user
from settlement.service.deps import Ctx

SESSION_COOKIE = "stl_session"
LOGIN_CSRF_COOKIE = "stl_login_csrf"


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfRefused(Exception):
    """A state-changing form without the session's CSRF token: 403."""


class RoleRefused(Exception):
    """The signed-in user's role may not open this page: 403."""


def current_user(request: Request, ctx: Ctx) -> SignedIn:
    """The signed-in staff user; LoginRequired (a redirect to /login) without a valid session."""
    with ctx.db.read() as session:
        user = session_user(session, request.cookies.get(SESSION_COOKIE))
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    request.state.principal = user.principal
    return user


User = Annotated[SignedIn, Depends(current_user)]


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(next_url, safe="")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path of this site (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/review/settlements"


def check_csrf(user: SignedIn, form: FormData) -> None:
    token = form.get("csrf_token")
    if not csrf_ok(user.csrf_token, token if isinstance(token, str) else None):
        raise CsrfRefused()


def require_role(user: SignedIn, *roles: str) -> None:
    if user.role not in roles:
        raise RoleRefused()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"
