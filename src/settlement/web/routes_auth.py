"""Signing in and out, and the page language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from settlement.service.accounts.service import (
    SignInRefused,
    csrf_ok,
    session_user,
    set_language,
    sign_in,
    sign_out,
)
from settlement.service.db import run_transaction
from settlement.service.deps import Ctx

from . import i18n
from .render import gettext_for, language_of, page
from .session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfRefused,
    User,
    check_csrf,
    is_https,
    new_login_csrf,
    safe_next,
)

router = APIRouter(include_in_schema=False)


def home_of(role: str) -> str:
    """Where a role's work starts: insurers at their statements, the others at the settlements."""
    return "/insurers/statements" if role == "insurer" else "/review/settlements"


@router.get("/")
def home(request: Request, ctx: Ctx) -> Response:
    with ctx.db.read() as session:
        user = session_user(session, request.cookies.get(SESSION_COOKIE))
    return RedirectResponse(home_of(user.role) if user else "/review/settlements", status_code=303)


def _login_form(request: Request, next_url: str, message: str | None, status: int = 200) -> Response:
    token = new_login_csrf()
    response = page(request, "login.html", None, status=status, csrf_token=token, next_url=next_url, message=message)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", secure=is_https(request),
        path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    with ctx.db.read() as session:
        user = session_user(session, request.cookies.get(SESSION_COOKIE))
        if user is not None:
            return RedirectResponse(safe_next(next) if next else home_of(user.role), status_code=303)
    return _login_form(request, safe_next(next) if next else "", None)


@router.post("/login")
def login(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE) or "", csrf_token):
        raise CsrfRefused()
    _ = gettext_for(language_of(request, None))
    client = request.client.host if request.client else None
    outcome = run_transaction(
        ctx.db.write, lambda session: sign_in(session, username.strip(), password, client=client)
    )
    try:
        token, user = outcome.accepted()
    except SignInRefused as refused:
        if refused.locked_until is not None:
            until = i18n.iso_date(refused.locked_until, ctx.tz)
            message = _("Too many failed sign-ins: this account is locked until %(until)s.") % {"until": until}
        else:
            message = _("Wrong username or password.")
        return _login_form(request, safe_next(next) if next else "", message, status=401)
    response = RedirectResponse(safe_next(next) if next else home_of(user.role), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="strict", secure=is_https(request), path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Ctx, user: User) -> Response:
    check_csrf(user, await request.form())
    run_transaction(ctx.db.write, lambda session: sign_out(session, request.cookies.get(SESSION_COOKIE)))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/preferences/language")
async def choose_language(request: Request, ctx: Ctx, user: User) -> Response:
    form = await request.form()
    check_csrf(user, form)
    language = form.get("language")
    chosen = language if isinstance(language, str) and language in i18n.LANGUAGES else None
    run_transaction(ctx.db.write, lambda session: set_language(session, user.username, chosen))
    back = form.get("next")
    return RedirectResponse(safe_next(back if isinstance(back, str) else None), status_code=303)
