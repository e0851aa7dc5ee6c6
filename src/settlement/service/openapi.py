"""The OpenAPI document made to say what the service answers, for every route, derived from the routes.

FastAPI's document promises ``422`` validation errors that this service answers
as ``400 invalid_request`` (errors.install), and nothing of the statuses every
route shares. ``install`` wraps ``app.openapi`` so that, once, every operation:

- answers its problems as ``application/problem+json`` with the ``Problem`` schema;
- documents 400 (unknown or refused parameters, invalid input), 401 and 403
  (``/v1`` and ``/metrics``: a key is needed), 404 (a path with parameters),
  413 and 415 (a body), 503 (the database) — and FastAPI's ``422`` only where
  the route itself declares one (claim and registry rules);
- states its string path and query values as they are checked (service.strict:
  ``minLength`` 1 and a pattern refusing control and bidirectional characters);
- and the API key as a bearer security scheme.

A route added anywhere needs to declare only what is its own: a 200 body
(``response_model``), other success statuses (201), and 409/422 it can answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from .strict import VALUE_PATTERN

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "the SPEC §6 claim code or the service's own"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "field errors: field, message (and in: path, query or body)",
        },
        "claim_id": {"type": "string"},
        "settlement_id": {"type": "string"},
    },
}
SHARED = {
    "400": "invalid request: an unknown query parameter (unknown_parameter), a refused value, an invalid body",
    "401": "no valid API key",
    "403": "the key's role, hospital or funds may not do this",
    "404": "not found (another hospital's settlement is not found either)",
    "413": "the body is over the limit",
    "415": "the body is not application/json (or the route's declared media type)",
    "422": "the request is as documented but a rule refuses it (a cursor not the service's, a blank"
    " identifier, overlapping periods, a claim's SPEC §6 error)",
    "503": "the database is unavailable; retry after Retry-After seconds",
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": PROBLEM_REF}}}


def _string_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The plain string schema of a parameter (itself, or its member of an optional anyOf), if any."""
    candidates = [schema, *schema.get("anyOf", [])]
    for candidate in candidates:
        if candidate.get("type") == "string" and not {"enum", "format", "pattern", "const"} & set(candidate):
            found: dict[str, Any] = candidate
            return found
    return None


def _hoist_defs(document: dict[str, Any], operation: dict[str, Any]) -> None:
    """A request body schema given as a model's own JSON schema (``openapi_extra``) keeps its ``$defs``
    inside, where ``#/$defs/...`` does not resolve: they move to the components (named ``Claim…``)."""
    schemas = document["components"]["schemas"]
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        defs = schema.pop("$defs", None)
        if not defs:
            continue
        rename = {name: name if name.startswith("Claim") else f"Claim{name}" for name in defs}
        text = json.dumps(defs | {"__root__": schema})
        for name, new in rename.items():
            text = text.replace(f'"#/$defs/{name}"', f'"#/components/schemas/{new}"')
        moved = json.loads(text)
        media["schema"] = moved.pop("__root__")
        for name, body in moved.items():
            schemas.setdefault(rename[name], body)


def tighten(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http", "scheme": "bearer", "description": "an API key (settlement keys create)",
    }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            _hoist_defs(document, operation)
            responses = operation.setdefault("responses", {})
            validation = responses.get("422", {}).get("content", {}).get("application/json", {})
            if "HTTPValidationError" in str(validation.get("schema", "")):
                del responses["422"]  # FastAPI's; this service answers 400 (errors.install)
            keyed = path.startswith("/v1/") or path == "/metrics"
            statuses = ["400", "503"] if path != "/healthz" else ["400"]
            if keyed:
                statuses += ["401", "403"]
                operation["security"] = [{"bearer": []}]
            if "{" in path:
                statuses.append("404")
            if "requestBody" in operation:
                statuses += ["413", "415"]
            if "requestBody" in operation or operation.get("parameters"):
                statuses.append("422")  # allowed by the document, refused by a rule it cannot state
            for status in statuses:
                responses.setdefault(status, _problem(SHARED[status]))
            for status, response in responses.items():
                if status[0] in "45":
                    response.setdefault("description", SHARED.get(status, "problem"))
                    response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
            for parameter in operation.get("parameters", []):
                string = _string_schema(parameter.get("schema", {}))
                if string is not None and parameter.get("in") in ("path", "query"):
                    string.setdefault("minLength", 1)
                    string["pattern"] = VALUE_PATTERN
    return document


def install(app: FastAPI) -> None:
    """``app.openapi`` returns FastAPI's document, tightened (once)."""
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if not getattr(app, "_tightened", False):
            tighten(original())
            app._tightened = True  # type: ignore[attr-defined]
        return original()

    app.openapi = openapi  # type: ignore[method-assign]
