"""service/pgloop.py: PostgreSQL's previews, read on the event loop, answer as the portable preview does."""

from __future__ import annotations

import asyncio
import copy
import warnings
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from service_helpers import example, example_claims, register_examples
from sqlalchemy.exc import DBAPIError, OperationalError

from settlement.engine import Tables
from settlement.service.app import create_app
from settlement.service.config import Settings
from settlement.service.db import is_unavailable
from settlement.service.pgloop import LoopConnections

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def started(settings: Settings, service_tables: Tables, using_postgres: bool) -> Iterator[Any]:
    """An application started as a worker starts (its lifespan run): loop connections open."""
    if not using_postgres:
        pytest.skip("loop connections are PostgreSQL's")
    app = create_app(settings, tables=service_tables)
    with TestClient(app) as client:
        yield app, client
    assert app.state.loop_conns is None  # closed with the worker
    app.state.ctx.db.dispose()


@pytest.fixture
def loop_reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What LoopConnections.execute answered, call by call."""
    seen: list[Any] = []
    execute = LoopConnections.execute

    async def spy(self: LoopConnections, sql: str, params: Any) -> Any:
        rows = await execute(self, sql, params)
        seen.append(rows)
        return rows

    monkeypatch.setattr(LoopConnections, "execute", spy)
    return seen


def _requests(auth: dict[str, dict[str, str]]) -> list[tuple[str, dict[str, str], Any]]:
    """Every worked example, and the refusals that come before or instead of the read."""
    cases: list[tuple[str, dict[str, str], Any]] = [
        (claim["claim_id"], auth["hospital"], claim) for claim in example_claims()
    ]
    other_hospital = copy.deepcopy(example("EX-01"))
    cases += [
        ("no key", {}, example("EX-01")),
        ("unknown key", {"Authorization": "Bearer stl_000000000000_nothing"}, example("EX-01")),
        ("malformed key", {"Authorization": "Bearer nonsense"}, example("EX-01")),
        ("reviewer key", auth["reviewer"], example("EX-01")),
        ("another hospital's claim", auth["H0031"], other_hospital),
        ("not a claim", auth["hospital"], {"claim_id": "X"}),
        ("not a claim, unknown key", {"Authorization": "Bearer stl_000000000000_nothing"}, {"claim_id": "X"}),
        ("not a claim, reviewer key", auth["reviewer"], {"claim_id": "X"}),
    ]
    return cases


def _portable(app: Any, headers: dict[str, str], body: Any) -> tuple[int, bytes]:
    """The portable preview (SQLite's: settlements.router.preview_counter) on the same database:
    its status and body, or its refusal's status and problem body."""
    from starlette.requests import Request

    from settlement.service.errors import ServiceError
    from settlement.service.settlements.router import preview_counter

    scope = {"type": "http", "method": "POST", "path": "/v1/settlements/preview", "app": app,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    try:
        response = preview_counter(orjson.dumps(body), Request(scope), app.state.ctx)
    except ServiceError as exc:
        return exc.status, orjson.dumps({"code": exc.code, "detail": exc.detail})
    return response.status_code, bytes(response.body)


def test_previews_on_the_loop_answer_as_the_portable_preview(
    started: Any, client: Any, auth: dict[str, dict[str, str]], loop_reads: list[Any]
) -> None:
    app, loop_client = started
    assert app.state.loop_conns.free == app.state.ctx.settings.preview_connections
    register_examples(client, auth["reviewer"])
    for name, headers, body in _requests(auth):
        answer = loop_client.post("/v1/settlements/preview", json=body, headers=headers)
        status, expected = _portable(app, headers, body)
        assert answer.status_code == status, (name, answer.text)
        if status == 200:
            assert answer.content == expected, name
        else:
            problem = answer.json()
            assert orjson.dumps({"code": problem["code"], "detail": problem["detail"]}) == expected, name
    # read on the loop: the claims that validate under a well-formed key (the key and the claim), and
    # the bodies that do not validate under one (the key alone); none before a key is well formed
    not_read = {"no key", "malformed key"}
    assert len(loop_reads) == len(_requests(auth)) - len(not_read)
    statuses = {name: loop_client.post("/v1/settlements/preview", json=b, headers=h).status_code
                for name, h, b in _requests(auth)}
    assert statuses["EX-01"] == 200 and statuses["no key"] == 401 and statuses["reviewer key"] == 403
    assert statuses["another hospital's claim"] == 403 and statuses["not a claim"] in (400, 422)
    assert statuses["not a claim, unknown key"] == 401 and statuses["not a claim, reviewer key"] == 403


PREVIEW_PIDS = (
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'settlement-previews' AND datname = current_database()"
)


def test_a_loop_connection_that_broke_is_replaced_and_its_preview_still_answered(
    started: Any, client: Any, auth: dict[str, dict[str, str]], loop_reads: list[Any]
) -> None:
    app, loop_client = started
    register_examples(client, auth["reviewer"])
    conns: LoopConnections = app.state.loop_conns
    size = conns.free
    with app.state.ctx.db.counter() as admin:
        pids = [row[0] for row in admin.execute(PREVIEW_PIDS)]  # this app's, and the session app's
        assert len(pids) >= size
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # returns once it is gone
    response = loop_client.post("/v1/settlements/preview", json=example("EX-01"), headers=auth["hospital"])
    assert response.status_code == 200, response.text  # on a new loop connection
    # every free connection was seen closed by the server (db.closed_by_server) before any
    # statement was sent on it, and given back closed for the pool to replace
    assert len(loop_reads) == 1 and conns.stats().get("returns_bad") == size

    async def replaced() -> int:
        for _ in range(100):
            if conns.free == size:
                break
            await asyncio.sleep(0.05)
        return conns.free

    assert loop_client.portal.call(replaced) == size
    with app.state.ctx.db.counter() as admin:
        assert not set(pids) & {row[0] for row in admin.execute(PREVIEW_PIDS)}
    response = loop_client.post("/v1/settlements/preview", json=example("EX-01"), headers=auth["hospital"])
    assert response.status_code == 200 and loop_reads[-1] is not None


def test_a_preview_waits_for_a_busy_connection_up_to_its_bound_and_errors_are_sqlalchemys(
    settings: Settings, using_postgres: bool
) -> None:
    if not using_postgres:
        pytest.skip("loop connections are PostgreSQL's")
    from settlement.service.db import make_database

    db = make_database(settings)

    async def run() -> tuple[Any, Any, Any, int, int]:
        conns = LoopConnections(db.counter_conninfo(), db.counter_kwargs(), 1, timeout=0.05, busy_timeout=0.1)
        await conns.open()
        try:
            slow = asyncio.ensure_future(conns.execute("SELECT pg_sleep(0.5), $1::text", ["a"]))
            await asyncio.sleep(0.05)
            with pytest.raises(OperationalError) as busy:  # the one connection is at the server all along
                await conns.execute("SELECT $1::int + 1", [1])
            conns.busy_timeout = 5.0
            waited = await conns.execute("SELECT $1::int + 1", [2])  # ... until the sleep is over
            await slow
            with pytest.raises(DBAPIError) as refused:
                await conns.execute("SELECT 1 / $1::int", [0])
            assert refused.value.orig.sqlstate == "22012"  # division_by_zero, psycopg's own class
            answer = await conns.execute("SELECT $1::int + 1", [41])
            free = conns.free
        finally:
            await conns.close()
        return busy.value, waited, answer, free, conns.free

    try:
        busy, waited, answer, free, after = asyncio.run(run())
        assert is_unavailable(busy)  # a 503 (errors.install)
        assert waited == [[b"3"]]
        assert answer == [[b"42"]]  # the connection came back after the error
        assert free == 1
        assert after == 0
    finally:
        db.dispose()


def test_connections_that_could_not_be_opened_are_opened_once_the_database_answers(
    settings: Settings, using_postgres: bool
) -> None:
    if not using_postgres:
        pytest.skip("loop connections are PostgreSQL's")
    import psycopg
    from service_helpers import PG_ADMIN

    from settlement.service.db import make_database

    db = make_database(settings)
    name = settings.sqlalchemy_url.rsplit("/", 1)[1].split("?")[0]

    def allow(yes: bool) -> None:  # new connections refused, the open ones kept: as at a start while down
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if yes else "false"}')

    async def run() -> tuple[Any, Any, int]:
        conns = LoopConnections(db.counter_conninfo(), db.counter_kwargs(), 2)
        try:
            await conns.open()  # as at a worker's start with the database down: not an error
            with pytest.raises(OperationalError) as refused:  # the fresh connection refused: 503
                await conns.execute("SELECT $1::int + 1", [1])
            allow(True)
            answer = await conns.execute("SELECT $1::int + 1", [41])  # waits for the pool's reconnection
            for _ in range(500):
                if conns.free == 2:
                    break
                await asyncio.sleep(0.01)
            return refused.value, answer, conns.free
        finally:
            await conns.close()

    allow(False)
    try:
        refused, answer, free = asyncio.run(run())
        assert is_unavailable(refused)
        assert answer == [[b"42"]] and free == 2  # filled up to its size, and no more
    finally:
        allow(True)
        db.dispose()
