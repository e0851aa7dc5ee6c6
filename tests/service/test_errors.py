"""Every error code, as application/problem+json with its status; and nothing half-written."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from service_helpers import example, register
from sqlalchemy import func, select

from settlement.service.accumulators.models import PersonCharity, PersonYear
from settlement.service.funds.models import FundPool
from settlement.service.settlements import counter, pgcounter
from settlement.service.settlements.models import LedgerEntry, Settlement, SettlementEvent

JSON = {"Content-Type": "application/json"}
EX01 = example("EX-01")
PERSON = EX01["patient"]["person_id"]


def force_locked_way(monkeypatch: Any) -> None:
    """PostgreSQL: settle through service.settle's transaction (the portable, locked way), as
    when settlements.pgcounter cannot settle a claim exactly, so the tests of that path reach it."""

    def locked_way(*_args: Any) -> None:
        raise pgcounter.UseLockedPath

    monkeypatch.setattr(pgcounter, "settle", locked_way)


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"] == f"urn:settlement:problem:{code}" and body["title"] and body["detail"]
    return dict(body)


@pytest.fixture
def registered(client, auth) -> None:
    register(client, auth["reviewer"], PERSON, valid_from="2010-01-01")


def _claim(**changes: Any) -> dict[str, Any]:
    claim = copy.deepcopy(EX01)
    for path, value in changes.items():
        target = claim
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1]] = value
    return claim


@pytest.mark.parametrize("path", ["/v1/settlements", "/v1/settlements/preview"])
def test_claim_error_codes(client, auth, registered, path):
    post = lambda body: client.post(path, json=body, headers=auth["hospital"])  # noqa: E731
    # not JSON, not an object: 400
    problem(client.post(path, content=b"{not json", headers=JSON | auth["hospital"]), 400, "invalid_claim")
    problem(client.post(path, content=b"[1, 2]", headers=JSON | auth["hospital"]), 400, "invalid_claim")
    # field errors: 422 with the list of them
    bad = _claim(items__0__quantity="-1", visit__admitted="2018-02-30", treatmnet="x")
    body = problem(post(bad), 422, "invalid_claim")
    fields = {e["field"] for e in body["errors"]}
    assert {"items[0].quantity", "visit.admitted", "treatmnet"} <= fields
    assert all(e["message"] for e in body["errors"]) and body["claim_id"] == "EX-01"
    # the SPEC §6 codes, each with its message
    wrong_check = PERSON[:-1] + "1"
    body = problem(post(_claim(patient={"person_id": wrong_check})), 422, "invalid_person_id")
    assert "check character" in body["detail"]
    body = problem(
        post(_claim(visit={"type": "inpatient", "admitted": "2017-03-01", "discharged": "2017-03-02"})),
        422,
        "no_schedule",
    )
    assert "2017-03-02" in body["detail"]
    body = problem(post(_claim(items__1__code="NOPE99")), 422, "unknown_item")
    assert body["detail"] == "unknown item codes: NOPE99"
    ex12 = example("EX-12")
    register(client, auth["reviewer"], ex12["patient"]["person_id"], "resident", "extreme_poverty")
    ex12["hospital"] = {"id": "H0002"}  # at its registered level
    body = problem(post(ex12), 422, "no_standard")
    assert body["detail"] == "no fixed standard for treatment 'laser' in group esophageal_cancer"
    # the registry's codes
    unknown = "110101199003074514"
    body = problem(post(_claim(patient={"person_id": unknown})), 422, "person_not_registered")
    assert unknown in body["detail"]
    body = problem(post(_claim(patient={"person_id": PERSON, "category": "low_income"})), 422, "identity_mismatch")
    assert "low_income" in body["detail"]
    problem(post(_claim(patient={"person_id": PERSON, "scheme": "employee"})), 422, "identity_mismatch")
    problem(post(_claim(hospital={"id": "H0031", "level": 3})), 403, "hospital_mismatch")


def test_order_of_checks_follows_the_spec(client, auth, registered):
    # invalid_claim before the person id, the person id before the registry and the schedule
    both = _claim(items__0__quantity=0, patient={"person_id": "123"})
    problem(client.post("/v1/settlements", json=both, headers=auth["hospital"]), 422, "invalid_claim")
    unregistered_bad_id = _claim(patient={"person_id": "110101199003074515"})
    problem(
        client.post("/v1/settlements", json=unregistered_bad_id, headers=auth["hospital"]), 422, "invalid_person_id"
    )
    bad_item_and_schedule = _claim(
        items__1__code="NOPE99", visit={"type": "inpatient", "admitted": "2017-03-01", "discharged": "2017-03-02"}
    )
    problem(client.post("/v1/settlements", json=bad_item_and_schedule, headers=auth["hospital"]), 422, "no_schedule")


def test_period_not_covering_the_admission_is_not_registered(client, auth):
    register(client, auth["reviewer"], PERSON, valid_from="2019-01-01")
    body = problem(client.post("/v1/settlements", json=EX01, headers=auth["hospital"]), 422, "person_not_registered")
    assert "2018-01-08" in body["detail"]


def test_payload_too_large_is_413(client, auth, registered):
    big = _claim()
    big["items"] = big["items"] * 20_000  # ~2.4 MB
    text = json.dumps(big).encode()
    assert len(text) > 2 * 1024 * 1024
    problem(client.post("/v1/settlements", content=text, headers=JSON | auth["hospital"]), 413, "payload_too_large")

    def chunks() -> Any:  # no Content-Length: counted as it streams
        for start in range(0, len(text), 65536):
            yield text[start : start + 65536]

    problem(client.post("/v1/settlements", content=chunks(), headers=JSON | auth["hospital"]), 413, "payload_too_large")


def test_not_found_and_method_not_allowed_are_problems(client, auth):
    problem(client.get("/v1/nothing", headers=auth["admin"]), 404, "not_found")
    problem(client.get("/v1/settlements/nope", headers=auth["admin"]), 404, "not_found")
    problem(client.delete("/v1/schedules", headers=auth["admin"]), 405, "method_not_allowed")
    problem(client.get("/v1/persons/110101199003074514", headers=auth["admin"]), 404, "not_found")
    problem(client.get("/v1/persons/110101199003074514/accumulators", headers=auth["admin"]), 404, "not_found")


def lenient(app: Any) -> Any:
    """A client that gets the 500 response instead of the server's exception."""
    from fastapi.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


def _counts(app: Any) -> dict[str, int]:
    with app.state.ctx.db.read() as session:
        return {
            model.__name__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Settlement, SettlementEvent, LedgerEntry, PersonYear, PersonCharity, FundPool)
        }


def _sums(app: Any) -> tuple[Any, ...]:
    with app.state.ctx.db.read() as session:
        return (
            session.execute(
                select(func.sum(PersonYear.basic_paid_inpatient), func.sum(PersonYear.critical_base))
            ).one(),
            session.scalar(select(func.sum(PersonCharity.paid))),
            session.scalar(select(func.sum(FundPool.used))),
        )


@pytest.mark.parametrize(
    ("portable", "postgres"),
    [
        (
            "settlement.service.settlements.repository.insert_ledger",
            "settlement.service.settlements.repository.insert_ledger",
        ),
        (
            "settlement.service.settlements.service.add_to_person_year",
            "settlement.service.settlements.service.add_to_person_year",
        ),
        (
            "settlement.service.settlements.service.add_pool_used",
            "settlement.service.settlements.service.add_pool_used",
        ),
    ],
)
def test_a_failure_anywhere_in_a_settle_leaves_nothing(
    client, auth, app, registered, monkeypatch, portable, postgres, using_postgres
):
    # PostgreSQL settles through settlements.pgcounter, and when that cannot, through service.settle
    # (the portable, locked way): this test takes the second; SQLite the portable way
    target = postgres if using_postgres else portable
    first = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert first.status_code == 201
    before_counts, before_sums = _counts(app), _sums(app)
    if using_postgres:
        force_locked_way(monkeypatch)
    module, name = target.rsplit(".", 1)
    real = getattr(__import__(module, fromlist=[name]), name)

    def failing(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # write, then fail: everything written so far must go
        raise RuntimeError("injected failure")

    monkeypatch.setattr(target, failing)
    second = _claim(claim_id="EX-01-fail")
    response = lenient(app).post("/v1/settlements", json=second, headers=auth["hospital"])
    problem(response, 500, "internal_error")
    assert _counts(app) == before_counts and _sums(app) == before_sums
    monkeypatch.undo()
    assert client.post("/v1/settlements", json=second, headers=auth["hospital"]).status_code == 201


@pytest.mark.parametrize("fail_at", ["end", "ledger"])
def test_a_failure_inside_counter_settle_leaves_nothing(
    client, auth, app, registered, monkeypatch, using_postgres, fail_at
):
    # the counter's write is one statement (migration 0002): a failure after it wrote everything
    # (end) or in its last insert (ledger) must roll all of it back, and the claim settles afterwards
    if not using_postgres:
        pytest.skip("counter_settle is the PostgreSQL path")
    assert client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).status_code == 201
    before_counts, before_sums = _counts(app), _sums(app)
    if fail_at == "end":
        monkeypatch.setattr(pgcounter, "WRITE", pgcounter.WRITE.replace("event_seq FROM", "event_seq / 0 FROM"))
    else:
        real = counter.ledger_amounts
        monkeypatch.setattr(counter, "ledger_amounts", lambda comp: [("nobody", "x", 1), *real(comp)[1:]])
    second = _claim(claim_id="EX-01-fail")
    problem(lenient(app).post("/v1/settlements", json=second, headers=auth["hospital"]), 500, "internal_error")
    assert _counts(app) == before_counts and _sums(app) == before_sums
    monkeypatch.undo()
    assert client.post("/v1/settlements", json=second, headers=auth["hospital"]).status_code == 201


def test_a_failure_in_a_reversal_leaves_nothing(client, auth, app, registered, monkeypatch, using_postgres):
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]
    before_counts, before_sums = _counts(app), _sums(app)

    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected failure")

    if using_postgres:  # one statement (counter_reverse): fail after it wrote everything
        monkeypatch.setattr(
            pgcounter, "REVERSE", pgcounter.REVERSE.replace("settlement_seq FROM", "settlement_seq / 0 FROM")
        )
    else:
        monkeypatch.setattr("settlement.service.settlements.service.add_pool_used", failing)
    problem(lenient(app).post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"]), 500, "internal_error")
    assert _counts(app) == before_counts and _sums(app) == before_sums
    assert client.get(f"/v1/settlements/{sid}", headers=auth["hospital"]).json()["status"] == "settled"


def test_deadlock_is_retried(client, auth, app, registered, monkeypatch, using_postgres):
    """A deadlock or serialization failure re-runs the whole settle on a fresh transaction."""
    from sqlalchemy.exc import OperationalError

    from settlement.service.settlements import service

    class Deadlock(Exception):
        sqlstate = "40P01"

    # the pool lock of the locked way (service.settle), on either database
    module, name = service, "lock_pools"
    real = getattr(module, name)
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OperationalError("SELECT … FOR UPDATE", {}, Deadlock("deadlock detected"))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)
    if using_postgres:  # the locked way's transaction (pgcounter retries its own: next test)
        force_locked_way(monkeypatch)
    response = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert response.status_code == 201, response.text
    assert calls["n"] == 3
    assert _counts(app)["Settlement"] == 1


@pytest.mark.parametrize("failures", [2, 3])
def test_counter_write_reads_again_after_a_deadlock(
    client, auth, app, registered, monkeypatch, using_postgres, failures
):
    """pgcounter: a deadlock (or a moved snapshot) in its write reads and computes again; after
    ATTEMPTS failures the locked way settles the claim. Either way exactly one settlement."""
    import psycopg

    if not using_postgres:
        pytest.skip("the counter's own path is PostgreSQL's")
    real = pgcounter.call_write
    calls = {"n": 0}

    def flaky(conn: Any, params: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return real(conn, params)

    monkeypatch.setattr(pgcounter, "call_write", flaky)
    response = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert response.status_code == 201, response.text
    assert calls["n"] == min(failures + 1, pgcounter.ATTEMPTS)
    assert _counts(app)["Settlement"] == 1
    assert client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).headers["Idempotent-Replayed"] == "true"


def test_concurrent_double_settle_caught_by_the_unique_constraint(client, auth, app, registered, monkeypatch):
    """When the pre-checks miss a concurrent insert, the constraint decides: replay or 409."""
    from settlement.service.settlements import repository

    first = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()
    real = repository.find_by_claim

    def blind_twice() -> Any:
        calls = {"n": 0}

        def find(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1  # settle's two checks miss the row, as if it were not yet committed
            return None if calls["n"] <= 2 else real(*args, **kwargs)

        return find

    monkeypatch.setattr(repository, "find_by_claim", blind_twice())
    replay = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first
    monkeypatch.setattr(repository, "find_by_claim", blind_twice())
    problem(
        client.post("/v1/settlements", json=_claim(items__0__quantity=3), headers=auth["hospital"]),
        409,
        "claim_conflict",
    )
    monkeypatch.undo()
    assert _counts(app)["Settlement"] == 1 and _counts(app)["LedgerEntry"] == 5


def test_database_down_is_503_with_retry_after(service_tables, tmp_path, using_postgres):
    from fastapi.testclient import TestClient

    from settlement.service.app import create_app
    from settlement.service.config import Settings

    # nothing listens on port 1; a SQLite file in a missing folder cannot be opened
    url = "postgresql://postgres@127.0.0.1:1/nowhere" if using_postgres else f"sqlite:///{tmp_path}/no/dir/x.db"
    app = create_app(Settings(database_url=url, retry_after_seconds=7), tables=service_tables)
    client = TestClient(app)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "7"
    assert client.get("/healthz").status_code == 200  # alive, not ready
    response = client.post("/v1/settlements", json=EX01, headers={"Authorization": "Bearer stl_000000000000_x"})
    body = problem(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "7" and "unavailable" in body["detail"]


def test_endless_deadlocks_give_503_busy(client, auth, app, registered, monkeypatch, using_postgres):
    from sqlalchemy.exc import OperationalError

    from settlement.service.settlements import service

    class Deadlock(Exception):
        sqlstate = "40P01"

    def always(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT … FOR UPDATE", {}, Deadlock("deadlock detected"))

    module, name = service, "lock_pools"
    monkeypatch.setattr(module, name, always)
    monkeypatch.setattr(app.state.ctx.settings, "transaction_retries", 2)
    if using_postgres:
        force_locked_way(monkeypatch)
    response = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    problem(response, 503, "busy")
    assert response.headers["Retry-After"] == "1"
    assert _counts(app)["Settlement"] == 0


def test_endless_deadlocks_in_a_reversal_give_503_busy_and_change_nothing(
    client, auth, app, registered, monkeypatch, using_postgres
):
    # the counter's one-statement reversal retries a deadlock like db.run_transaction, then 503 busy
    from sqlalchemy.exc import OperationalError

    if not using_postgres:
        pytest.skip("the one-statement reversal is PostgreSQL's")
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]
    before_counts, before_sums = _counts(app), _sums(app)

    class Deadlock(Exception):
        sqlstate = "40P01"

    real = pgcounter.pg_execute
    calls = {"n": 0}

    def deadlocking(conn: Any, sql: str, params: Any = None) -> Any:
        if sql == pgcounter.REVERSE:
            calls["n"] += 1
            raise OperationalError(sql, {}, Deadlock("deadlock detected"))
        return real(conn, sql, params)

    monkeypatch.setattr(pgcounter, "pg_execute", deadlocking)
    monkeypatch.setattr(app.state.ctx.settings, "transaction_retries", 2)
    problem(client.post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"]), 503, "busy")
    assert calls["n"] == 3
    assert _counts(app) == before_counts and _sums(app) == before_sums
