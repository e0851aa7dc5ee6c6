"""Domain errors carry their code and HTTP status; all are rendered as RFC 9457 problem+json.

A problem body is ``{"type", "title", "status", "detail", "code", "instance"}``
plus, where they apply, ``errors`` (field errors of ``invalid_claim`` and of
other invalid input), ``claim_id`` and ``settlement_id``. ``code`` is the SPEC §6
code for claim errors and a service code for the rest.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from settlement.claims import ClaimError

from .db import RetriesExhausted, is_unavailable

log = logging.getLogger("settlement.service")

PROBLEM = "application/problem+json"

TITLES = {
    "invalid_claim": "The claim is not valid",
    "invalid_person_id": "The person id is not a valid resident id",
    "no_schedule": "No fee schedule is in force on the discharge date",
    "unknown_item": "Item codes not in the schedule's catalog",
    "no_standard": "No fixed standard fits the claim",
    "person_not_registered": "The person is not in the registry for the admission date",
    "identity_mismatch": "The claim's scheme or category differs from the registry",
    "hospital_mismatch": "The claim is for another hospital than the key's",
    "claim_conflict": "Another claim was settled under this hospital id and claim_id",
    "invalid_request": "The request is not valid",
    "invalid_import": "The import has errors; nothing was imported",
    "invalid_period": "A category period starts before the person's birth",
    "unauthorized": "A valid API key is required",
    "forbidden": "This key's role may not call this endpoint",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "unknown_parameter": "The request names a parameter this route does not take",
    "hospital_not_registered": "The claim's hospital is not in the hospital registry",
    "hospital_level_mismatch": "The claim states another level than the hospital registry's",
    "payload_too_large": "The request body is too large",
    "request_timeout": "The request body did not arrive in time",
    "unsupported_media_type": "Unsupported media type",
    "not_acceptable": "Not acceptable",
    "database_unavailable": "The database is unavailable; retry later",
    "busy": "The service is busy; retry later",
    "internal_error": "Internal error",
}


class ServiceError(Exception):
    """An error with its problem code and HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


def claim_problem(error: ClaimError, status: int | None = None) -> ServiceError:
    """A SPEC §6 claim error as a problem (422 unless told; field errors for invalid_claim)."""
    errors = [dict(e) for e in error.fields] if error.code == "invalid_claim" else None
    return ServiceError(
        status or 422,
        error.code,
        error.message,
        errors=errors,
        claim_id=error.claim_id,
    )


def unauthorized(detail: str = "send Authorization: Bearer <key>") -> ServiceError:
    return ServiceError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> ServiceError:
    return ServiceError(403, "forbidden", detail)


def not_found(detail: str) -> ServiceError:
    return ServiceError(404, "not_found", detail)


def invalid_request(detail: str, errors: list[dict[str, Any]] | None = None) -> ServiceError:
    return ServiceError(400, "invalid_request", detail, errors=errors)


def problem_response(
    status: int, code: str, detail: str, *, instance: str | None = None, headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The problem+json response: the RFC 9457 members, then ``extra``'s that are not None."""
    body: dict[str, Any] = {
        "type": f"urn:settlement:problem:{code}",
        "title": TITLES.get(code, code.replace("_", " ")),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def unavailable_response(retry_after: int, instance: str | None, detail: str) -> JSONResponse:
    return problem_response(
        503,
        "database_unavailable",
        detail,
        instance=instance,
        headers={"Retry-After": str(retry_after)},
    )


def allowed_methods(request: Request) -> str:
    """The methods the OpenAPI document lists for the request's path (Starlette's 405 names one route's):
    of the templates that match the path, the most literal one (``/v1/persons/import`` before
    ``/v1/persons/{person_id}``), as routing and the document read it."""
    app = request.app
    templates = getattr(app.state, "allow_templates", None)
    if templates is None:
        templates = sorted(
            (
                (path.count("{"), re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"),
                 ", ".join(sorted(m.upper() for m in operations)))
                for path, operations in app.openapi().get("paths", {}).items()
            ),
            key=lambda t: t[0],
        )
        app.state.allow_templates = templates
    path = request.url.path
    return next((methods for _, regex, methods in templates if regex.match(path)), "")


def install(app: FastAPI, retry_after: int) -> None:
    """Registers the handlers that turn every error into problem+json."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.code,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            errors=exc.errors,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(
                    str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")
                ),
                "in": str(e.get("loc", ("",))[0]),
                "message": str(e.get("msg", "")),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        # 400: not what the OpenAPI document allows; 422: allowed by it, refused by a rule it cannot state
        # (a model's own validator: overlapping periods, a blank identifier)
        rule_only = all(e.get("type") == "value_error" for e in exc.errors())
        return problem_response(
            422 if rule_only else 400, "invalid_request", detail, instance=request.url.path, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            406: "not_acceptable",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.status_code, "invalid_request" if exc.status_code < 500 else "internal_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's that matched it
            headers["Allow"] = allowed_methods(request)
        return problem_response(exc.status_code, code, str(exc.detail), instance=request.url.path, headers=headers)

    @app.exception_handler(RetriesExhausted)
    async def _busy(request: Request, exc: RetriesExhausted) -> JSONResponse:
        return problem_response(
            503,
            "busy",
            "the settlement kept meeting concurrent ones; retry",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_unavailable(exc):
            log.warning("database unavailable: %s", exc.orig if exc.orig is not None else exc)
            return unavailable_response(
                retry_after, request.url.path, "the database is unavailable"
            )
        log.exception("database error", exc_info=exc)
        return problem_response(500, "internal_error", "database error", instance=request.url.path)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, "internal_error", "internal error", instance=request.url.path)
