"""Database outages on the real PostgreSQL, in a database of the test's own.

The service's backends are terminated and new connections refused with
``ALTER DATABASE … ALLOW_CONNECTIONS false`` on that database only (the server
is shared: it is never stopped). While the database is down every route that
needs it answers 503 with Retry-After within a second and /readyz is not ready;
once it is back the first settle succeeds, and nothing is half-written.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from service_helpers import PG_ADMIN, example, fresh_database_url, register_examples, requires_postgres

from settlement.engine import Tables
from settlement.service.app import create_app
from settlement.service.auth.service import create_key
from settlement.service.config import Settings
from settlement.service.migrate import upgrade

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = requires_postgres

# routes that answer without the database: liveness and the API's own description
NO_DATABASE = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def admin_sql(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def terminate(name: str) -> int:
    """Ends every backend of database ``name`` (and only of it); how many there were."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            )
        ]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # waits until it is gone
    return len(pids)


def block(name: str) -> None:
    """An outage of one database: no new connections, every open one ended."""
    admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    terminate(name)


def unblock(name: str) -> None:
    admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def outage(tmp_path: Path, service_tables: Tables) -> Iterator[tuple[Any, TestClient, str, dict[str, str]]]:
    """(app, client, database name, headers by role) of a started service on a database of its own."""
    url, cleanup = fresh_database_url(tmp_path, postgres=True)
    name = url.rsplit("/", 1)[1]
    settings = Settings(database_url=url, retry_after_seconds=3, db_pool_size=8)
    upgrade(settings)
    app = create_app(settings, tables=service_tables)
    try:
        with TestClient(app) as client:  # started as a worker starts: counter and loop connections open
            with app.state.ctx.db.write() as session:
                keys = {role: create_key(session, role) for role in ("reviewer", "insurer", "admin")}
                keys["hospital"] = create_key(session, "hospital", hospital_id="H0002")
                session.commit()
            auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
            register_examples(client, auth["reviewer"])
            if "/v1/hospitals/{hospital_id}" in app.openapi()["paths"]:  # the counter settles registered ones
                body = {"name": "医院 H0002", "level": 2, "district": "230102"}
                response = client.put("/v1/hospitals/H0002", json=body, headers=auth["admin"])
                assert response.status_code in (200, 201), response.text
            yield app, client, name, auth
    finally:
        unblock(name)
        app.state.ctx.db.dispose()
        cleanup()


def claim(n: int) -> dict[str, Any]:
    body = example("EX-01")
    return {**body, "claim_id": f"OUT-{n:03d}"}


def settle(client: TestClient, auth: dict[str, dict[str, str]], n: int) -> Any:
    return client.post("/v1/settlements", json=claim(n), headers=auth["hospital"])


def test_terminated_backends_are_never_handed_to_a_request(outage: Any) -> None:
    _app, client, name, auth = outage
    first = settle(client, auth, 0)
    assert first.status_code == 201, first.text
    assert terminate(name) >= 4  # the counter's, the loop's and the ORM's connections
    answers = [settle(client, auth, n).status_code for n in range(1, 11)]
    answers += [
        client.post("/v1/settlements/preview", json=claim(99), headers=auth["hospital"]).status_code
        for _ in range(10)
    ]
    sid = first.json()["settlement_id"]
    answers.append(client.post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"]).status_code)
    assert answers == [201] * 10 + [200] * 11
    assert client.get("/readyz").status_code == 200


def test_a_connection_lost_without_a_word_is_tried_once_more_on_another(
    outage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if the network had cut them (nothing readable before the statement): each route's first
    statement fails, is recognised as a lost connection and runs once more on a live one."""
    from settlement.service import db, pgloop

    _app, client, name, auth = outage
    first = settle(client, auth, 0)
    assert first.status_code == 201, first.text
    for module in (db, pgloop):
        monkeypatch.setattr(module, "closed_by_server", lambda conn: conn.closed)
    terminate(name)
    assert settle(client, auth, 1).status_code == 201
    terminate(name)
    assert client.post("/v1/settlements/preview", json=claim(9), headers=auth["hospital"]).status_code == 200
    terminate(name)
    sid = first.json()["settlement_id"]
    assert client.post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"]).json()["status"] == "reversed"
    assert [settle(client, auth, n).status_code for n in range(2, 8)] == [201] * 6


def test_a_settle_whose_answer_was_lost_after_its_commit_is_replayed_not_written_twice(
    outage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """counter_settle committed, then the connection died before its answer: the second run (on
    another connection) finds the claim under (hospital id, claim_id) and replays it."""
    from settlement.service.settlements import pgcounter

    app, client, _name, auth = outage
    real = pgcounter.call_write
    calls: list[int] = []

    def commit_then_lose(conn: Any, params: Any) -> Any:
        calls.append(1)
        result = real(conn, params)
        if len(calls) == 1:
            conn.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return result  # pragma: no cover - the second run replays: no second write

    monkeypatch.setattr(pgcounter, "call_write", commit_then_lose)
    response = settle(client, auth, 0)
    assert response.status_code == 200 and response.headers["Idempotent-Replayed"] == "true", response.text
    assert calls == [1]
    assert settle(client, auth, 0).json()["settlement_id"] == response.json()["settlement_id"]
    with psycopg.connect(app.state.ctx.settings.sqlalchemy_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM settlements").fetchone() == (1,)
    assert_whole(app)


def _route_requests(app: Any, auth: dict[str, dict[str, str]], sid: str) -> list[tuple[str, str, Any, dict[str, str]]]:
    """One request per operation of the API description (every route the service documents), its
    path parameters filled in, a body where the route takes one."""
    patient = claim(0)["patient"]
    person = {"scheme": patient["scheme"], "categories": [
        {"category": patient.get("category", "none"), "valid_from": "2000-01-01", "valid_to": None}]}
    values = {"settlement_id": sid, "person_id": patient["person_id"], "fund_id": "poverty_relief"}
    out = []
    for template, operations in app.openapi()["paths"].items():
        if template in NO_DATABASE:
            continue
        path = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "x"), template)
        for method in sorted(operations):
            method = method.upper()
            headers = auth["hospital"] if path.startswith("/v1/settlements") and method == "POST" else auth["admin"]
            body: Any = None
            if method == "POST" and path in ("/v1/settlements", "/v1/settlements/preview"):
                body = claim(50)
            elif method == "PUT" and template == "/v1/persons/{person_id}":
                body = person
            out.append((method, path, body, headers))
    return out


# answers to a request refused for its own shape, before the database is asked
REFUSED_BEFORE_THE_DATABASE = {400, 405, 415}


def test_an_outage_is_503_within_a_second_everywhere_and_the_first_settle_after_it_succeeds(outage: Any) -> None:
    app, client, name, auth = outage
    settled = [settle(client, auth, n) for n in range(5)]
    assert [r.status_code for r in settled] == [201] * 5
    sid = settled[0].json()["settlement_id"]
    # the requests that need the database: with it up, they are not refused for their own shape
    requests = [
        (method, path, body, headers)
        for method, path, body, headers in _route_requests(app, auth, sid)
        if client.request(method, path, json=body, headers=headers).status_code not in REFUSED_BEFORE_THE_DATABASE
    ]
    swept = {(method, path) for method, path, _, _ in requests}
    assert {("POST", "/v1/settlements"), ("POST", "/v1/settlements/preview"), ("GET", "/v1/settlements"),
            ("POST", f"/v1/settlements/{sid}/reversal"), ("GET", f"/v1/persons/{claim(0)['patient']['person_id']}"),
            ("PUT", f"/v1/persons/{claim(0)['patient']['person_id']}")} <= swept, swept
    assert len(requests) >= 10

    block(name)
    slow: list[str] = []
    wrong: list[str] = []
    for _ in range(2):  # the first round finds the outage, the second knows it
        for method, path, body, headers in requests:
            start = time.perf_counter()
            response = client.request(method, path, json=body, headers=headers)
            took = time.perf_counter() - start
            if response.status_code != 503 or response.headers.get("Retry-After") != "3":
                wrong.append(f"{method} {path}: {response.status_code} {response.text[:120]}")
            elif response.json()["code"] != "database_unavailable":
                wrong.append(f"{method} {path}: {response.json()['code']}")
            if took >= 1.0:
                slow.append(f"{method} {path}: {took:.2f} s")
    assert not wrong, wrong
    assert not slow, slow
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "3"
    assert client.get("/healthz").status_code == 200  # alive, not ready

    # 16 cashiers at once: each answered 503 within a second (no queue behind a waiting pool)
    times: list[tuple[int, float]] = []
    lock = threading.Lock()

    def cashier(n: int) -> None:
        c = TestClient(app)
        for k in range(3):
            start = time.perf_counter()
            status = settle(c, auth, 100 + n * 3 + k).status_code
            with lock:
                times.append((status, time.perf_counter() - start))

    threads = [threading.Thread(target=cashier, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {status for status, _ in times} == {503}
    assert max(took for _, took in times) < 1.0, sorted(took for _, took in times)[-5:]

    unblock(name)
    first = settle(client, auth, 5)  # the very first request after the outage
    assert first.status_code == 201, first.text
    assert client.get("/readyz").status_code == 200
    after = [settle(client, auth, n).status_code for n in range(6, 16)]
    after.append(client.post("/v1/settlements/preview", json=claim(99), headers=auth["hospital"]).status_code)
    after.append(client.post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"]).status_code)
    assert after == [201] * 10 + [200, 200]  # the reversal: reversed in the sweep before the outage, answered again
    assert_whole(app)


def assert_whole(app: Any) -> None:
    """Nothing half-written: each settlement has its event and ledger, each total equals its ledger."""
    from loadtests.checks import half_written, run_checks

    url = app.state.ctx.settings.sqlalchemy_url
    result = run_checks(url, "OUT-", settle_sent=10_000)
    assert not result["problems"], result["problems"]
    assert not half_written(url)
