"""Keyset pages' cursors: ``kind:value`` in URL-safe base64, opaque to the client.

Any text is a cursor by the document, so one the service did not return is a
rule's refusal: 422 (service.openapi).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TypeVar

from .errors import ServiceError

T = TypeVar("T")


def encode_cursor(kind: str, value: object) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def cursor_parts(cursor: str) -> tuple[str, str]:
    """A cursor's (kind, value); ValueError when it is not base64 of UTF-8 text."""
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    kind, _, value = text.partition(":")
    return kind, value


def decode_cursor(cursor: str, kind: str, parse: Callable[[str], T]) -> T:
    """``parse`` of the value of a cursor of this kind (a ValueError of it: not one of ours, 422)."""
    try:
        found, value = cursor_parts(cursor)
        if found != kind:
            raise ValueError(cursor)
        return parse(value)
    except ValueError:
        raise ServiceError(422, "invalid_request", "cursor is not one this service returned") from None
