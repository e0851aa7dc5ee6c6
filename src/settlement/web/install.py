"""Wires the workspace into the service's FastAPI app: routes, static files, the API docs page, error pages."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from settlement.catalog import MessageError
from settlement.service.errors import ServiceError, problem_response

from . import charts, routes_auth, routes_dashboard, routes_insurers, routes_persons, routes_review
from .labels import ERROR_LABELS, ERROR_OTHER
from .render import gettext_for, language_of, page
from .session import CsrfRefused, LoginRequired, RoleRefused, login_url

log = logging.getLogger("settlement.web")
STATIC = Path(__file__).resolve().parent / "static"


def swagger_dir() -> Path:
    """Swagger UI 5 as the ``swagger-ui-bundle-v2`` package ships it (module ``swagger_ui_bundle``; no CDN)."""
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    return Path(swagger_ui_path)


def install(app: FastAPI) -> None:
    """Adds the pages, /static and /docs (local Swagger UI; the API-key scheme is declared by service.openapi)."""
    for module in (routes_auth, routes_review, routes_persons, routes_dashboard, routes_insurers):
        app.include_router(module.router)
    app.mount("/static/swagger-ui", StaticFiles(directory=swagger_dir()), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} · API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    _install_error_pages(app)
    # the chart renderer loaded in the background at start, not by the first clerk to open a settlement
    threading.Thread(target=_warm_charts, name="charts-warm-up", daemon=True).start()


def _warm_charts() -> None:
    try:
        charts.warm_up()
    except Exception:  # a page will say what is wrong when it draws
        log.exception("chart renderer warm-up failed")


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(login_url(exc.next_url), status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> Response:
        _ = gettext_for(language_of(request, None))
        return page(request, "error.html", None, status=403, heading=_("Refused"),
                    message=_("The form was not sent from this site's page (its security token is missing or"
                              " old). Reload the page and try again."))

    @app.exception_handler(RoleRefused)
    async def _role(request: Request, _exc: RoleRefused) -> Response:
        _ = gettext_for(language_of(request, None))
        return page(request, "error.html", None, status=403, heading=_("Refused"),
                    message=_("Your role may not open this page."))

    previous = app.exception_handlers.get(ServiceError)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        if request.url.path.startswith(("/review/", "/insurers")):
            _ = gettext_for(language_of(request, None))
            heading = _("Not found") if exc.status == 404 else _("Cannot do this")
            # raised from a catalog message (a page's own check): say it; else the code's words
            cause = exc.__cause__
            message = (cause.message.render(_) if isinstance(cause, MessageError)
                       else _(ERROR_LABELS.get(exc.code, ERROR_OTHER)))
            return page(request, "error.html", None, status=exc.status, heading=heading, message=message,
                        detail=exc.detail)
        if previous is not None:
            return await previous(request, exc)  # type: ignore[no-any-return, misc]
        return problem_response(exc.status, exc.code, exc.detail, instance=request.url.path)
