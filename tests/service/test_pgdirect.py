"""service/pgdirect.py: text parameters PostgreSQL reads back exactly, psycopg's own errors, one
PREPARE per connection and statement text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from service_helpers import PG_ADMIN, requires_postgres

from settlement.service import pgdirect

pytestmark = requires_postgres


@pytest.fixture(scope="module")
def conn() -> Iterator[Any]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        yield c


# what the counter sends: identifiers, claim text (any Unicode but NUL), quotes and backslashes
TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), TEXTS), max_size=6), single=TEXTS)
def test_text_and_text_arrays_arrive_as_sent(conn: Any, values: list[str | None], single: str) -> None:
    text = pgdirect.execute(conn, "SELECT $1::text", [single])[0][0]
    assert text is not None and text.decode() == single
    # the array as PostgreSQL read it, compared with psycopg's own adaptation of the same list
    echoed = pgdirect.execute(conn, "SELECT $1::text[]", [values])[0][0]
    expected = conn.execute("SELECT %s::text[]::text", (values,)).fetchone()[0]
    assert echoed is not None and echoed.decode() == expected


def test_numbers_dates_and_null(conn: Any) -> None:
    at = dt.datetime(2026, 11, 29, 5, 30, 1, 123456, tzinfo=dt.UTC)
    row = pgdirect.execute(
        conn,
        "SELECT $1::bigint + 1, $2::date, $3::timestamptz = '2026-11-29 05:30:01.123456+00'::timestamptz,"
        " $4::int IS NULL, $5::bigint[]",
        [9_007_199_254_740_993, dt.date(2019, 12, 31), at, None, "{1,NULL,-3}"],
    )[0]
    assert row == [b"9007199254740994", b"2019-12-31", b"t", b"t", b"{1,NULL,-3}"]


def test_nul_is_refused_not_cut(conn: Any) -> None:
    with pytest.raises(psycopg.errors.DataError):
        pgdirect.execute(conn, "SELECT $1::text", ["before\x00after"])


def test_errors_are_the_ones_psycopgs_cursor_raises_and_the_connection_stays_usable(conn: Any) -> None:
    for sql, params in (
        ("SELECT 1 / $1::int", [0]),
        ("DO $$BEGIN RAISE EXCEPTION 'moved' USING ERRCODE = 'SE409'; END$$", []),
        ("SELECT $1::int", ["not a number"]),
    ):
        with pytest.raises(psycopg.Error) as direct:
            pgdirect.execute(conn, sql, params)
        with pytest.raises(psycopg.Error) as cursor:
            conn.execute(sql.replace("$1", "%s"), params)
        assert type(direct.value) is type(cursor.value)
        assert direct.value.sqlstate == cursor.value.sqlstate is not None
    assert pgdirect.execute(conn, "SELECT 1 / $1::int", [1]) == [[b"1"]]


def test_a_sqlstate_psycopg_does_not_name_gets_its_class_class_and_diagnostics(conn: Any) -> None:
    sql = "DO $$BEGIN RAISE EXCEPTION 'odd' USING ERRCODE = '23P99', CONSTRAINT = 'c_odd'; END$$"
    with pytest.raises(psycopg.Error) as direct:
        pgdirect.execute(conn, sql, [])
    with pytest.raises(psycopg.Error) as cursor:
        conn.execute(sql)
    assert type(direct.value) is type(cursor.value) is psycopg.IntegrityError
    assert direct.value.sqlstate == cursor.value.sqlstate == "23P99"
    assert direct.value.diag.constraint_name == cursor.value.diag.constraint_name == "c_odd"


def test_each_statement_is_prepared_once_per_connection(conn: Any) -> None:
    sql = "SELECT $1::int * 2 AS doubled_for_the_prepare_test"

    def prepared(c: Any) -> int:
        return int(c.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%doubled_for_the_prepare_test%'"
        ).fetchone()[0])

    for n in range(3):
        assert pgdirect.execute(conn, sql, [n]) == [[str(2 * n).encode()]]
    assert prepared(conn) == 1
    with psycopg.connect(PG_ADMIN, autocommit=True) as other:  # a new session prepares it again
        assert pgdirect.execute(other, sql, [4]) == [[b"8"]] and prepared(other) == 1
