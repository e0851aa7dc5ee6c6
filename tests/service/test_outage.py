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


def _route_requests(app: Any, auth: dict[str, dict[str, str]], sid: str) -> list[tuple[str, str, Any, dict[str, str]]]:
    """One request per operation of the API description (every route the service documents) that
    needs the database, its path parameters filled in."""
    values = {"settlement_id": sid, "person_id": claim(0)["patient"]["person_id"], "fund_id": "poverty_relief"}
    out = []
    for template, operations in app.openapi()["paths"].items():
        if template in NO_DATABASE:
            continue
        path = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "x"), template)
        for method in sorted(operations):
            method = method.upper()
            headers = auth["hospital"] if path.startswith("/v1/settlements") and method == "POST" else auth["admin"]
            body = claim(50) if method in ("POST", "PUT") else None
            out.append((method, path, body, headers))
    return out


def test_an_outage_is_503_within_a_second_everywhere_and_the_first_settle_after_it_succeeds(outage: Any) -> None:
    app, client, name, auth = outage
    settled = [settle(client, auth, n) for n in range(5)]
    assert [r.status_code for r in settled] == [201] * 5
    sid = settled[0].json()["settlement_id"]
    requests = _route_requests(app, auth, sid)
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
    assert after == [201] * 10 + [200, 200]
    assert_whole(app)


def assert_whole(app: Any) -> None:
    """Nothing half-written: each settlement has its event and ledger, each total equals its ledger."""
    from loadtests.checks import half_written, run_checks

    url = app.state.ctx.settings.sqlalchemy_url
    result = run_checks(url, "OUT-", settle_sent=10_000)
    assert not result["problems"], result["problems"]
    assert not half_written(url)
