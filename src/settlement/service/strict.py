"""Strict requests: what every route refuses before its own work, derived from its declaration.

One check for every route (a dependency of the whole application, and the
counter's front door: service.counter_routes), so a route added anywhere is
covered without a list kept by hand:

- a query parameter the route does not declare (its dependant tree's query
  parameters, by alias) → ``400 unknown_parameter`` naming them all;
- a path or query value that is blank or holds a control character or a
  bidirectional mark, override or isolate (claims.models.REFUSED_CHARACTERS)
  → ``400 invalid_request`` naming the parameter: refused, never trimmed (a
  NUL never reaches the database);
- a body whose Content-Type is not one the route declares (its body model's
  ``application/json``, or its ``openapi_extra`` request body's media types)
  → ``415 unsupported_media_type``;
- a JSON body of a route with a body model that names a key twice in one object
  → ``422 invalid_request`` naming it (a JSON parser keeps one of the two, which is
  not the writer's call; claims check their own: claims.parse, ``422 invalid_claim``).

The OpenAPI document states the same (service.openapi: minLength and a
pattern on every string parameter, 400/415 on every route that can answer them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from starlette.datastructures import FormData, UploadFile

from settlement.claims.models import refused_character
from settlement.claims.parse import DuplicateKeyError, decode_json

from .errors import ServiceError, invalid_request

VALUE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069]*" \
    "[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069]" \
    "[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069]*$"
"""What a path or query value may be, as the OpenAPI document states it: not blank, no refused character."""

TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e" \
    "\\u2066-\\u2069]*$"
"""A free text in a body (a review note): lines and tabs, but no other control character (a NUL never
reaches the database) and no bidirectional mark, override or isolate."""
YUAN_PATTERN = "^[0-9]{1,13}(\\.[0-9]{1,2})?$"
"""An amount in yuan as a filter or a confirmation states it (settlements.query.yuan_to_fen reads it): at
most two decimals, well inside int64 fen."""
DISTRICT_PREFIX_PATTERN = "^[0-9]{2,6}$"
"""A 行政区划代码 prefix as the settlements filter takes it (settlements.query.check_filter)."""


def _dependants(dependant: Any) -> Iterator[Any]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters a route declares (its own and its dependencies'), by the name a client sends."""
    cached = getattr(route, "_strict_query_names", None)
    if cached is None:
        cached = frozenset(p.alias for d in _dependants(route.dependant) for p in d.query_params)
        route._strict_query_names = cached  # type: ignore[attr-defined]  # computed once per route
    return cached


def has_body_model(route: APIRoute) -> bool:
    """Whether FastAPI parses the route's body into a model (the claim routes read theirs as bytes)."""
    cached = getattr(route, "_strict_body_model", None)
    if cached is None:
        cached = any(d.body_params for d in _dependants(route.dependant))
        route._strict_body_model = cached  # type: ignore[attr-defined]
    return bool(cached)


def body_media_types(route: APIRoute) -> frozenset[str]:
    """The media types a route's body may be sent as: JSON for a body model, else what its
    ``openapi_extra`` request body lists (none: the route reads no body)."""
    cached = getattr(route, "_strict_media_types", None)
    if cached is None:
        extra = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
        cached = frozenset({*extra, *(["application/json"] if has_body_model(route) else [])})
        route._strict_media_types = cached  # type: ignore[attr-defined]
    return cached


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def date_names(route: APIRoute) -> frozenset[str]:
    """The route's query parameters that are dates: only YYYY-MM-DD (pydantic would also read ``0``
    as 1970-01-01), as the document's ``format: date`` says."""
    cached = getattr(route, "_strict_date_names", None)
    if cached is None:
        cached = frozenset(
            p.alias for d in _dependants(route.dependant) for p in d.query_params
            if "datetime.date" in str(p.field_info.annotation) or p.field_info.annotation is dt.date
        )
        route._strict_date_names = cached  # type: ignore[attr-defined]
    return cached


def media_type(content_type: str | None) -> str:
    """A Content-Type's media type, without parameters, lower case ("" for none)."""
    return (content_type or "").split(";")[0].strip().lower()


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def refusal(value: str) -> str | None:
    """Why a text is refused (never trimmed): blank, or a control or bidirectional character."""
    return refused_character(value) or (None if value.strip() else "must not be blank")


def check_value(name: str, value: str, where: str) -> None:
    """400 naming the parameter (or form field) when the value is blank or holds a refused character."""
    why = refusal(value)
    if why is not None:
        raise ServiceError(
            400, "invalid_request", f"{where} parameter {name!r} {why}",
            errors=[{"field": name, "in": where, "message": why}],
        )


def check_query_names(route: APIRoute, query: Iterable[tuple[str, str]]) -> None:
    allowed = query_names(route)
    unknown = sorted({name for name, _ in query if name not in allowed})
    if unknown:
        names = ", ".join(unknown)
        known = ", ".join(sorted(allowed)) or "none"
        raise ServiceError(
            400, "unknown_parameter", f"unknown query parameters: {names} (this route takes: {known})",
            errors=[{"field": name, "in": "query", "message": "unknown parameter"} for name in unknown],
        )


def check_media_type(route: APIRoute, content_type: str | None) -> None:
    allowed = body_media_types(route)
    media = media_type(content_type)
    if allowed and media not in allowed:
        raise ServiceError(
            415, "unsupported_media_type",
            f"send the body as {' or '.join(sorted(allowed))}, not {media or 'without a Content-Type'}",
        )


def duplicate_key_problem(route: APIRoute, content_type: str | None, body: bytes) -> ServiceError | None:
    """422 naming a key a JSON body model's body names twice in one object; None otherwise (a body that
    is not JSON is the route's own validation's to answer)."""
    if not body or not has_body_model(route) or media_type(content_type) != "application/json":
        return None
    try:
        decode_json(body)
    except DuplicateKeyError as exc:
        return ServiceError(
            422, "invalid_request", f"{exc.path}: a key named twice in one object",
            errors=[{"field": exc.path, "in": "body", "message": "duplicate key"}],
        )
    except (ValueError, RecursionError):
        return None
    return None


def query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    """The query as (name, value) pairs, blank values kept (a blank value is refused, not ignored)."""
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")


def check_route(route: APIRoute, scope: Mapping[str, Any], path_params: Mapping[str, Any], has_body: bool) -> None:
    """Every check of this module for one request to ``route``."""
    query = query_pairs(scope.get("query_string", b""))
    check_query_names(route, query)
    for name, value in path_params.items():
        if isinstance(value, str):
            check_value(name, value, "path")
    for name, value in query:
        check_value(name, value, "query")
    dates = date_names(route)
    for name, value in query:
        if name in dates and not ISO_DATE.fullmatch(value):
            raise ServiceError(
                400, "invalid_request", f"query parameter {name!r} must be a date YYYY-MM-DD, got {value!r}",
                errors=[{"field": name, "in": "query", "message": "must be a date YYYY-MM-DD"}],
            )
    if has_body and scope.get("method") in ("POST", "PUT", "PATCH"):
        check_media_type(route, _header(scope, b"content-type"))


async def strict_request(request: Request) -> None:
    """The application-wide dependency: check_route for the route FastAPI matched.

    The API's routes only: the staff pages (settlement.web, not in the OpenAPI document) take
    forms whose empty fields arrive as blank values, and check their fields themselves."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return
    headers = request.headers
    has_body = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
    check_route(route, request.scope, request.path_params, has_body)
    if has_body and has_body_model(route):  # FastAPI has read the body already: request.body() is its copy
        problem = duplicate_key_problem(route, headers.get("content-type"), await request.body())
        if problem is not None:
            raise problem


def front_door_problem(route: APIRoute, scope: Mapping[str, Any], path_params: Mapping[str, Any], body: bytes) -> (
    ServiceError | None
):
    """check_route at the counter's front door (service.counter_routes), which FastAPI's dependencies do not see."""
    try:
        check_route(route, scope, path_params, bool(body))
    except ServiceError as exc:
        return exc
    return duplicate_key_problem(route, _header(scope, b"content-type"), body)


def json_date(value: Any) -> Any:
    """A body's date as the document states it (``format: date``): a JSON string YYYY-MM-DD (or a date,
    from Python). Not a number or a string of digits, which pydantic would read as a Unix time (0 as
    1970-01-01), nor 20240101 or a date-time. Refused as not the document's (400), not as a rule's
    value_error (422: errors.install)."""
    if isinstance(value, dt.date) or (isinstance(value, str) and ISO_DATE.fullmatch(value)):
        return value
    raise PydanticCustomError("date_format", "must be a date YYYY-MM-DD, got {value}", {"value": repr(value)})


JsonDate = Annotated[dt.date, BeforeValidator(json_date)]
"""A date in a request body (service.persons, service.reviews): see json_date."""


def form_date(value: Any, name: str) -> dt.date:
    """A multipart form's date field (YYYY-MM-DD, the document's ``format: date``; not 20240101, which
    Python also reads): 400 naming the field when missing or not a date."""
    if not isinstance(value, str) or not value:
        raise invalid_request(f"the form field {name!r} is missing", [{"field": name, "message": "required"}])
    try:
        if not ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid_request(f"{name}: not a date: {value!r}", [{"field": name, "message": "YYYY-MM-DD"}]) from None


async def read_form(request: Request, fields: Collection[str], hint: str) -> FormData:
    """The request's multipart form, of these fields only; 400 ``hint`` (what to send) for another
    body, 400 naming the fields it does not take."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise invalid_request(hint)
    form = await request.form()
    unknown = sorted(set(form.keys()) - set(fields))
    if unknown:
        raise invalid_request(
            f"unknown form fields: {', '.join(unknown)}", [{"field": k, "message": "unknown"} for k in unknown]
        )
    return form


def form_file(form: FormData, name: str, hint: str) -> UploadFile:
    """A multipart form's file field: 400 ``hint`` naming the field when it is missing or not a file."""
    upload = form.get(name)
    if upload is None or isinstance(upload, str):
        raise invalid_request(hint, [{"field": name, "message": "required"}])
    return upload


def form_text(value: Any, name: str) -> str:
    """A multipart form's text field: 400 naming the field when missing, blank or holding a refused
    character (as a query value: the document states it with ``minLength`` 1 and VALUE_PATTERN)."""
    if not isinstance(value, str) or not value:
        raise invalid_request(f"the form field {name!r} is missing", [{"field": name, "message": "required"}])
    check_value(name, value, "form")
    return value
