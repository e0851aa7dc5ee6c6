"""Jinja2 templates rendered in the page's language (one environment per language)."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from settlement.service.accounts.service import SignedIn

from . import i18n, labels

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def environment(language: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["yuan"] = i18n.yuan
    env.globals["LANGUAGES"] = i18n.LANGUAGE_NAMES
    env.globals.update(labels.globals_for_templates())
    return env


def language_of(request: Request, user: SignedIn | None) -> str:
    """The user's chosen language, else the browser's (Accept-Language), else Chinese."""
    if user is not None and user.language:
        return user.language
    return i18n.negotiate(request.headers.get("accept-language"))


def gettext_for(language: str) -> i18n.Gettext:
    return i18n.translations(language).gettext


def page(
    request: Request, template: str, user: SignedIn | None, *, status: int = 200, **values: Any
) -> HTMLResponse:
    """A page in the user's language; every template gets the user, the CSRF token and helpers."""
    language = language_of(request, user)
    env = environment(language)
    tz = request.app.state.ctx.tz

    def when(value: dt.date | dt.datetime | None) -> str:
        return i18n.iso_date(value, tz)

    def url_with(**changes: Any) -> str:
        """This page's URL with some query parameters changed (None removes one)."""
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
        params += [(k, str(v)) for k, v in changes.items() if v is not None and v != ""]
        return request.url.path + ("?" + urlencode(params) if params else "")

    html = env.get_template(template).render(
        request=request,
        user=user,
        csrf_token=user.csrf_token if user else values.pop("csrf_token", ""),
        lang=language,
        when=when,
        url_with=url_with,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "Content-Language":
                                                             language.replace("_", "-")})
