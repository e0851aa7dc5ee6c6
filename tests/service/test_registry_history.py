"""The registry's name, district, history of every change, birth-date check and district scope."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from service_helpers import person_id
from sqlalchemy import text

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.deps import current_principal

PID = person_id(1)  # 230102 19700101 001x
OTHER = person_id(2)
PERIOD = {"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": None}


def body(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"scheme": "resident", "categories": [PERIOD], "name": "张三", "district": "230102"}
    out.update(overrides)
    return out


def history(client: Any, headers: dict[str, str], pid: str = PID) -> list[dict[str, Any]]:
    response = client.get(f"/v1/persons/{pid}/history", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["person_id"] == pid
    return list(response.json()["items"])


def test_name_and_district_are_stored_and_names_hidden_from_insurers(client, auth):
    created = client.put(f"/v1/persons/{PID}", json=body(name="  张三 "), headers=auth["reviewer"])
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "张三" and created.json()["district"] == "230102"
    assert client.get(f"/v1/persons/{PID}", headers=auth["admin"]).json()["name"] == "张三"
    as_insurer = client.get(f"/v1/persons/{PID}", headers=auth["insurer"]).json()
    assert as_insurer["name"] is None and as_insurer["district"] == "230102"
    # both optional: a PUT replaces the whole entry, so leaving them out clears them
    plain = client.put(f"/v1/persons/{PID}", json={"scheme": "resident", "categories": [PERIOD]},
                       headers=auth["reviewer"])
    assert plain.status_code == 200 and plain.json()["name"] is None and plain.json()["district"] is None


@pytest.mark.parametrize(
    "field,value",
    [("district", "23010"), ("district", "2301021"), ("district", "99010a"), ("district", "990102"),
     ("district", 230102), ("name", "   "), ("name", "x" * 101), ("name", "张\u202e三"), ("name", "a\x00b")],
)
def test_bad_name_or_district_is_refused(client, auth, field, value):
    response = client.put(f"/v1/persons/{PID}", json=body(**{field: value}), headers=auth["reviewer"])
    assert response.status_code in (400, 422), response.text
    assert any(e["field"] == field for e in response.json()["errors"])
    assert client.get(f"/v1/persons/{PID}", headers=auth["reviewer"]).status_code == 404


def test_period_before_birth_is_422(client, auth):
    late = person_id(3, birth="20100615")
    early = {"category": "none", "valid_from": "2010-06-14", "valid_to": "2012-12-31"}
    later = {"category": "low_income", "valid_from": "2013-01-01", "valid_to": None}
    response = client.put(f"/v1/persons/{late}", json=body(categories=[early, later]), headers=auth["reviewer"])
    assert response.status_code == 422 and response.json()["code"] == "invalid_period"
    assert response.json()["errors"][0]["field"] == "categories.0.valid_from"
    assert "2010-06-15" in response.json()["detail"]
    on_birthday = {**early, "valid_from": "2010-06-15"}
    assert client.put(f"/v1/persons/{late}", json=body(categories=[on_birthday, later]),
                      headers=auth["reviewer"]).status_code == 201


def test_every_change_is_a_history_record(client, auth, keys):
    reviewer_key_id = keys["reviewer"].split("_")[1][:12]
    assert client.put(f"/v1/persons/{PID}", json=body(), headers=auth["reviewer"]).status_code == 201
    assert client.put(f"/v1/persons/{PID}", json=body(), headers=auth["reviewer"]).status_code == 200  # no change
    steps = [
        (body(scheme="employee"), ["scheme"]),
        (body(scheme="employee", name="李四"), ["name"]),
        (body(scheme="employee", name="李四", district="230103"), ["district"]),
        (body(scheme="employee", name="李四", district="230103",
              categories=[{**PERIOD, "category": "low_income"}]), ["categories"]),
    ]
    for change, _ in steps:
        assert client.put(f"/v1/persons/{PID}", json=change, headers=auth["admin"]).status_code == 200
    records = history(client, auth["reviewer"])
    assert len(records) == 1 + len(steps)
    first = records[0]
    assert first["before"] is None and first["source"] == "put" and first["changed"] == [
        "scheme", "name", "district", "categories"]
    assert first["actor"] == reviewer_key_id
    assert first["after"] == {"scheme": "resident", "name": "张三", "district": "230102",
                              "categories": [{"category": "registered_poor", "valid_from": "2018-01-01",
                                              "valid_to": None}]}
    for record, (change, changed) in zip(records[1:], steps, strict=True):
        assert record["changed"] == changed
        assert record["after"]["scheme"] == change["scheme"] and record["after"]["name"] == change["name"]
        assert record["actor"] != reviewer_key_id  # the admin's key
    for earlier, later in itertools.pairwise(records):  # a chain: each before is the last after
        assert later["before"] == earlier["after"] and later["changed_at"] >= earlier["changed_at"]
    assert records[-1]["after"]["categories"][0]["category"] == "low_income"


def test_imports_write_history_and_keep_name_and_district(client, auth):
    assert client.put(f"/v1/persons/{PID}", json=body(), headers=auth["reviewer"]).status_code == 201
    csv = ("person_id,scheme,category,valid_from,valid_to\n"
           f"{PID},resident,low_income,2019-01-01,\n"
           f"{OTHER},employee,none,2018-01-01,\n")
    response = client.post("/v1/persons/import", content=csv.encode(),
                           headers={**auth["admin"], "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    records = history(client, auth["reviewer"])
    assert [r["source"] for r in records] == ["put", "import"]
    assert records[1]["before"] == records[0]["after"] and records[1]["changed"] == ["categories"]
    assert records[1]["after"]["name"] == "张三" and records[1]["after"]["district"] == "230102"  # kept
    new = history(client, auth["admin"], OTHER)
    assert len(new) == 1 and new[0]["before"] is None and new[0]["after"]["scheme"] == "employee"
    # the same file again changes nothing and records nothing
    again = client.post("/v1/persons/import", content=csv.encode(),
                        headers={**auth["admin"], "Content-Type": "text/csv"})
    assert again.status_code == 200
    assert len(history(client, auth["reviewer"])) == 2 and len(history(client, auth["reviewer"], OTHER)) == 1


def test_history_is_for_reviewers_and_admins(client, auth):
    assert client.put(f"/v1/persons/{PID}", json=body(), headers=auth["reviewer"]).status_code == 201
    assert client.get(f"/v1/persons/{PID}/history", headers=auth["insurer"]).status_code == 403
    assert client.get(f"/v1/persons/{PID}/history", headers=auth["hospital"]).status_code == 403
    assert client.get(f"/v1/persons/{OTHER}/history", headers=auth["admin"]).status_code == 404


def test_history_rows_cannot_be_edited(client, auth, app):
    assert client.put(f"/v1/persons/{PID}", json=body(), headers=auth["reviewer"]).status_code == 201
    with app.state.ctx.db.write() as session, pytest.raises(Exception, match="append-only"):
        session.execute(text("UPDATE person_history SET actor = 'someone else'"))
    if app.state.ctx.db.dialect == "postgresql":
        with app.state.ctx.db.write() as session, pytest.raises(Exception, match="append-only"):
            session.execute(text("DELETE FROM person_history"))
    assert history(client, auth["reviewer"])[0]["actor"] != "someone else"


@contextmanager
def scoped(app: Any, district: str, role: Role = Role.REVIEWER) -> Iterator[None]:
    """Every request acts as a reviewer scoped to the district (as a signed-in staff member would)."""
    app.dependency_overrides[current_principal] = lambda: Principal(
        key_id="scopedkey001", role=role, district=district, user="clerk")
    try:
        yield
    finally:
        app.dependency_overrides.pop(current_principal, None)


def test_a_district_scoped_reviewer_sees_only_the_district(client, auth, app):
    inside, outside, nowhere = PID, OTHER, person_id(4)
    assert client.put(f"/v1/persons/{inside}", json=body(), headers=auth["admin"]).status_code == 201
    assert client.put(f"/v1/persons/{outside}", json=body(district="231202"), headers=auth["admin"]).status_code == 201
    assert client.put(f"/v1/persons/{nowhere}", json=body(district=None), headers=auth["admin"]).status_code == 201
    with scoped(app, "2301"):
        assert client.get(f"/v1/persons/{inside}").status_code == 200
        assert client.get(f"/v1/persons/{inside}/history").status_code == 200
        assert client.get(f"/v1/persons/{inside}/accumulators").status_code == 200
        for pid in (outside, nowhere):
            for path in ("", "/history", "/accumulators"):
                response = client.get(f"/v1/persons/{pid}{path}")
                assert response.status_code == 404, (pid, path)
                assert response.json()["code"] == "not_found"
            # and no write reaches it either: 404 as if it did not exist
            assert client.put(f"/v1/persons/{pid}", json=body(district="230102")).status_code == 404
        # a change by the clerk is recorded under the clerk's username
        assert client.put(f"/v1/persons/{inside}", json=body(name="王五")).status_code == 200
        moved_out = client.put(f"/v1/persons/{inside}", json=body(district="231202"))
        assert moved_out.status_code == 403
        new_elsewhere = client.put(f"/v1/persons/{person_id(5)}", json=body(district="231202"))
        assert new_elsewhere.status_code == 403
        records = history(client, {})
    assert records[-1]["actor"] == "clerk" and records[-1]["after"]["name"] == "王五"
    assert client.get(f"/v1/persons/{outside}", headers=auth["reviewer"]).json()["district"] == "231202"
    assert client.get(f"/v1/persons/{person_id(5)}", headers=auth["reviewer"]).status_code == 404


def test_concurrent_changes_record_one_unbroken_chain(app, client, auth, using_postgres):
    """Puts and imports racing on one person: every change recorded once, each before the last after."""
    import datetime as dt
    import threading

    from settlement.service.db import run_transaction
    from settlement.service.persons.schemas import PersonIn
    from settlement.service.persons.service import import_commit, put_person

    if not using_postgres:
        pytest.skip("row locks: PostgreSQL (SQLite serializes writers with BEGIN IMMEDIATE)")
    db = app.state.ctx.db
    actor = Principal(key_id="racer0000001", role=Role.REVIEWER)
    start = threading.Barrier(12)
    failures: list[BaseException] = []

    def put(i: int) -> None:
        data = PersonIn.model_validate(body(name=f"名{i}"))
        start.wait()
        run_transaction(db.write, lambda s: put_person(s, actor, PID, data, dt.datetime.now(dt.UTC)), retries=20)

    def load(i: int) -> None:
        csv = (f"person_id,scheme,category,valid_from,name\n{PID},resident,none,2018-0{i}-01,导入{i}\n"
               f"{OTHER},employee,none,2018-01-01,\n")
        start.wait()
        run_transaction(db.write, lambda s: import_commit(s, None, actor, csv.encode(), "x.csv"), retries=20)

    def guarded(fn: Any, i: int) -> None:
        try:
            fn(i)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(put, i)) for i in range(8)]
    threads += [threading.Thread(target=guarded, args=(load, i)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    records = history(client, auth["reviewer"])
    assert len(records) == 12  # every change differs from the one before it
    assert records[0]["before"] is None
    for earlier, later in itertools.pairwise(records):
        assert later["before"] == earlier["after"]
    final = client.get(f"/v1/persons/{PID}", headers=auth["reviewer"]).json()
    assert final["name"] == records[-1]["after"]["name"]
    assert len(history(client, auth["reviewer"], OTHER)) == 1  # created once, then unchanged
