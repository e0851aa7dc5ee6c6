"""The counter's hot statements sent with libpq's PQexecPrepared, under psycopg's cursor.

Each settle sends two statements (settlements.pgcounter), each preview one. psycopg's cursor
(query conversion, an adapter per parameter, a loader per column, its generator-driven wait) was
over a third of a settle's Python time under load; the connection's own ``pgconn.exec_prepared``
with text parameters costs well under half as much a statement (docs/PERFORMANCE.md §3, row 18).
libpq releases the GIL while it waits for the server, as psycopg does.

What stays psycopg's: the connection and its pool, and every error —
:func:`execute` raises the class ``psycopg.errors.lookup`` gives for the
result's SQLSTATE (its class's, for a code psycopg does not name), with the
result's diagnostics, so retries, 409s and 503s see psycopg's SQLSTATEs and types.

Parameters go as text: strings, integers, dates and datetimes in ISO form,
lists of strings as array literals, None as NULL. Results come back as text
(bytes) per column, converted by the caller, which knows the statement's columns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import weakref
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from psycopg import pq
from psycopg.errors import DatabaseError, DataError, Error, lookup

_NAMES: dict[str, bytes] = {}
_PREPARED: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()
"""Statement names prepared on each psycopg connection (a prepared statement lives with its session)."""

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


def statement_name(sql: str) -> bytes:
    """A statement's name from its text: another text (a test's injected fault) is another statement."""
    name = _NAMES.get(sql)
    if name is None:
        name = _NAMES[sql] = b"stl_" + hashlib.sha1(sql.encode()).hexdigest()[:24].encode()
    return name


def execute(conn: Any, sql: str, params: Sequence[Any]) -> list[list[bytes | None]]:
    """The rows of ``sql`` (``$1``… placeholders) run with ``params`` on a psycopg connection in
    autocommit mode; each value the column's text, None for NULL."""
    name = prepare(conn, sql)
    return rows(conn.pgconn.exec_prepared(name, [text(v) for v in params]), conn)


def prepare(conn: Any, sql: str) -> bytes:
    """The name ``sql`` is prepared under on this connection, prepared now if it was not yet."""
    name, prepared = statement_name(sql), prepared_on(conn)
    if name not in prepared:
        _check(conn.pgconn.prepare(name, sql.encode()), conn)
        prepared.add(name)
    return name


def prepared_on(conn: Any) -> set[bytes]:
    """The names of the statements prepared on this connection (so far as this module prepared them)."""
    prepared = _PREPARED.get(conn)
    if prepared is None:
        prepared = _PREPARED[conn] = set()
    return prepared


def rows(result: Any, conn: Any) -> list[list[bytes | None]]:
    """A statement's result as rows of column texts, or psycopg's exception for it."""
    _check(result, conn)
    ncols = result.nfields
    return [[result.get_value(r, c) for c in range(ncols)] for r in range(result.ntuples)]


def _check(result: Any, conn: Any) -> None:
    if result.status not in _OK:
        raise error(result, conn.info.encoding)


def error(result: Any, encoding: str) -> Error:
    """psycopg's exception for a failed result, as its cursor raises it: the class ``lookup`` names
    for the SQLSTATE; for a code it does not name, the DB-API class of the code's class (``23P99``
    → IntegrityError), else DatabaseError. ``diag`` and ``sqlstate`` read the result's fields."""
    state = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode("ascii", "replace")
    cls: type[Error] = DatabaseError
    try:
        cls = lookup(state)
    except KeyError:
        with suppress(KeyError):  # the DB-API class above the class code's own (which claims xx000)
            cls = next(c for c in lookup(state[:2] + "000").__mro__ if getattr(c, "sqlstate", None) is None)
    return cls(result.get_error_message(encoding), info=result, encoding=encoding)


def text(value: Any) -> bytes | None:
    """A parameter's text form, as PostgreSQL's input functions read it."""
    if value is None:
        return None
    if isinstance(value, str):
        if "\x00" in value:  # libpq would cut the text there
            raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return value.encode()
    if isinstance(value, bool):  # pragma: no cover - no statement here takes one
        raise TypeError("booleans are not sent as text here")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, dt.date):  # and datetimes: ISO 8601, with their offset when aware
        return value.isoformat().encode()
    if isinstance(value, list):
        return text_array(value)
    raise TypeError(f"no text form for {type(value).__name__}")


def text_array(values: list[str | None]) -> bytes:
    """A text[] literal: every element quoted, backslashes and quotes escaped, None as NULL."""
    parts = []
    for v in values:
        if v is None:
            parts.append("NULL")
        else:
            parts.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return text("{" + ",".join(parts) + "}") or b"{}"
