"""The registry list/search (keyset pages, district scope, names for reviewers only) and a
person's year against the caps."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from typing import Any

from service_helpers import example, person_id

from settlement.service.accounts.service import create_user
from settlement.service.auth.keys import Role

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"

PEOPLE = [  # (id, name, district, scheme, category)
    (person_id(1, "19800101"), "张三", "230102", "resident", "subsistence_allowance"),
    (person_id(2, "19800101"), "张三丰", "230103", "resident", "registered_poor"),
    (person_id(3, "19800101"), "李四", "230102", "employee", "none"),
    (person_id(4, "19900101"), "王五", "231202", "resident", "low_income"),
    (person_id(5, "19900101"), None, None, "resident", "none"),
    (person_id(6, "19900101"), "100%_名", "230102", "resident", "none"),
]


def register_people(client: Any, headers: dict[str, str]) -> None:
    for pid, name, district, scheme, category in PEOPLE:
        body = {"scheme": scheme, "name": name, "district": district, "categories": [
            {"category": "none", "valid_from": "2015-01-01", "valid_to": "2019-12-31"},
            {"category": category, "valid_from": "2020-01-01", "valid_to": None}]}
        assert client.put(f"/v1/persons/{pid}", json=body, headers=headers).status_code == 201


def ids(client: Any, headers: dict[str, str], **params: Any) -> list[str]:
    response = client.get("/v1/persons", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["person_id"] for item in response.json()["items"]]


def test_search_by_id_prefix_name_district_scheme_and_category(client, auth):
    register_people(client, auth["admin"])
    everyone = sorted(p[0] for p in PEOPLE)
    rv = auth["reviewer"]
    assert ids(client, rv) == everyone
    assert ids(client, rv, q="230102198001") == sorted(p[0] for p in PEOPLE[:3])
    assert ids(client, rv, q=PEOPLE[3][0]) == [PEOPLE[3][0]]
    assert ids(client, rv, q="张三") == sorted([PEOPLE[0][0], PEOPLE[1][0]])
    assert ids(client, rv, q="三丰") == [PEOPLE[1][0]]
    assert ids(client, rv, q="%") == [PEOPLE[5][0]] and ids(client, rv, q="_") == [PEOPLE[5][0]]  # literal
    assert ids(client, rv, district="2301") == sorted(p[0] for p in PEOPLE if p[2] and p[2].startswith("2301"))
    assert ids(client, rv, district="230102") == sorted(p[0] for p in PEOPLE if p[2] == "230102")
    assert ids(client, rv, district="23") == sorted(p[0] for p in PEOPLE if p[2])
    assert ids(client, rv, scheme="employee") == [PEOPLE[2][0]]
    assert ids(client, rv, category="registered_poor") == [PEOPLE[1][0]]
    assert ids(client, rv, category="registered_poor", on="2019-06-01") == []
    assert ids(client, rv, category="none", on="2019-06-01") == everyone
    assert ids(client, rv, q="张", district="230103", category="registered_poor") == [PEOPLE[1][0]]
    first = client.get("/v1/persons", params={"q": "张三"}, headers=rv).json()["items"][0]
    assert first["name"] == "张三" and first["district"] == "230102" and first["category"] == "subsistence_allowance"
    for bad in ({"district": "23x"}, {"district": "230"}, {"category": "rich"}, {"limit": 0}, {"cursor": "zzz"},
                {"q": ""}, {"on": "2019-13-01"}, {"q": "张\x00"}, {"q": "\u202e三"}, {"cursor": "cDoxMjM\x00"}):
        response = client.get("/v1/persons", params=bad, headers=rv)
        # 400: not what the document allows; 422: allowed by it, refused by a rule (service.openapi)
        assert response.status_code in (400, 422), (bad, response.text)


def test_malformed_ids_are_404_not_500(client, auth):
    register_people(client, auth["admin"])
    # a NUL or a bidi override may be refused up front (400, service.strict) or found nowhere (404)
    for path, statuses in (("a%00b", {400, 404}), (PEOPLE[0][0][:-1] + "%00", {400, 404}), ("x" * 300, {404}),
                           (PEOPLE[0][0] + "1", {404}), ("%E2%80%AE" + PEOPLE[0][0], {400, 404})):
        for suffix in ("", "/history", "/accumulators", "/position"):
            response = client.get(f"/v1/persons/{path}{suffix}", headers=auth["admin"])
            assert response.status_code in statuses, (path, suffix, response.text)


def test_insurers_see_no_names_and_cannot_search_by_name(client, auth):
    register_people(client, auth["admin"])
    items = client.get("/v1/persons", headers=auth["insurer"]).json()["items"]
    assert len(items) == len(PEOPLE) and all(item["name"] is None for item in items)
    assert ids(client, auth["insurer"], q="张三") == []
    assert ids(client, auth["insurer"], q="230102198001") == sorted(p[0] for p in PEOPLE[:3])
    assert client.get("/v1/persons", headers=auth["hospital"]).status_code == 403


def test_keyset_pages_walk_everyone_once(client, auth):
    register_people(client, auth["admin"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/persons", params=params, headers=auth["reviewer"]).json()
        seen += [item["person_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(p[0] for p in PEOPLE) and pages == 2


def test_a_scoped_reviewer_lists_only_the_district(client, auth, app):
    from test_registry_history import scoped

    register_people(client, auth["admin"])
    with scoped(app, "2301"):
        assert ids(client, {}) == sorted(p[0] for p in PEOPLE if p[2] and p[2].startswith("2301"))
        assert ids(client, {}, district="231202") == []
        assert ids(client, {}, q="王五") == []
    with scoped(app, "230102", Role.INSURER):
        assert ids(client, {}) == sorted(p[0] for p in PEOPLE if p[2] == "230102")


def test_year_position_against_the_caps(client, auth):
    claim = example("EX-01")
    pid = claim["patient"]["person_id"]
    body = {"scheme": "resident", "categories": [{"category": "registered_poor", "valid_from": "2018-01-01"}]}
    assert client.put(f"/v1/persons/{pid}", json=body, headers=auth["reviewer"]).status_code == 201
    assert client.post("/v1/settlements", json=claim, headers=auth["hospital"]).status_code == 201
    response = client.get(f"/v1/persons/{pid}/position", params={"year": 2018}, headers=auth["insurer"])
    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["policy_year"], got["on"], got["scheme"], got["category"]) == (
        2018, "2018-12-31", "resident", "registered_poor")
    assert got["schedule_version"].endswith("2018")
    rows = {(r["layer"], r["visit_type"] or r["fund"]): r for r in got["rows"]}
    assert {k: (v["paid"], v["cap"], v["remaining"], v["applies"]) for k, v in rows.items()} == {
        ("basic", "inpatient"): ("966.48", "100000.00", "99033.52", True),
        ("basic", "outpatient"): ("0.00", "400.00", "400.00", True),
        ("basic", "chronic_outpatient"): ("0.00", "5000.00", "5000.00", True),
        ("critical_illness", None): ("0.00", None, None, True),  # registered_poor: uncapped
        ("medical_assistance", None): ("326.63", "30000.00", "29673.37", True),
        ("charity", "poverty_relief"): ("537.45", "10000.00", "9462.55", True),
        ("charity", "children_major_illness"): ("0.00", "30000.00", "30000.00", True),
    }
    assert rows[("charity", "poverty_relief")]["fund_name"] == "扶贫专项救助基金"
    # an employee with no category: no assistance, the employee caps
    other = person_id(7)
    body = {"scheme": "employee", "categories": [{"category": "none", "valid_from": "2018-01-01"}]}
    assert client.put(f"/v1/persons/{other}", json=body, headers=auth["reviewer"]).status_code == 201
    rows = {(r["layer"], r["visit_type"] or r["fund"]): r
            for r in client.get(f"/v1/persons/{other}/position?year=2018", headers=auth["admin"]).json()["rows"]}
    assert rows[("basic", "inpatient")]["cap"] == "150000.00"
    assert rows[("critical_illness", None)]["cap"] == "400000.00"
    assert rows[("medical_assistance", None)]["applies"] is False
    assert rows[("charity", "poverty_relief")]["applies"] is False
    assert client.get(f"/v1/persons/{other}/position?year=1990", headers=auth["admin"]).status_code == 422
    assert client.get(f"/v1/persons/{person_id(8)}/position", headers=auth["admin"]).status_code == 404


def test_names_searched_for_stay_out_of_the_access_log(caplog):
    import logging

    from settlement.service import logmask

    logmask.install()  # as create_app and `settlement serve` do

    logger = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/v1/persons?district=2301&q=%E5%BC%A0%E4%B8%89&limit=5", "1.1", 200)
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/review/persons?q=张三", "1.1", 200)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ['127.0.0.1:5000 - "GET /v1/persons?district=2301&q=***&limit=5 HTTP/1.1" 200',
                     '127.0.0.1:5000 - "GET /review/persons?q=*** HTTP/1.1" 200']


def test_the_persons_page_shows_the_category_in_force_on_the_services_today(app, client, auth, monkeypatch):
    """The registry page's category column is the category on today in the service's time zone
    (ctx.today, as the API's default), not in a zone of its own."""
    pid = person_id(7, "19800101")
    body = {"scheme": "resident", "categories": [
        {"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": "2018-12-31"}]}
    assert client.put(f"/v1/persons/{pid}", json=body, headers=auth["admin"]).status_code == 201
    monkeypatch.setattr(type(app.state.ctx), "today", lambda _self: dt.date(2018, 6, 1))
    with app.state.ctx.db.write() as session:
        create_user(session, "registry-clerk", "reviewer", PASSWORD)
        session.commit()
    web = TestClient(app, base_url="https://testserver")
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)  # type: ignore[union-attr]
    signed = web.post("/login", data={"username": "registry-clerk", "password": PASSWORD, "csrf_token": token,
                                      "next": ""}, follow_redirects=False)
    assert signed.status_code == 303
    page = web.get("/review/persons", params={"q": pid})
    assert page.status_code == 200
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{pid}(?:(?!</tr>).)*</tr>", page.text, re.S)
    assert row is not None and "建档立卡贫困人口" in row.group(0)
    assert ids(client, auth["reviewer"], category="registered_poor") == [pid]  # the API's default day, the same
