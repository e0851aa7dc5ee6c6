"""Issue 10, the API's part: the hospital registry at the counter, strict requests, personal data.

Run on PostgreSQL when it is reachable (conftest), so the counter's one-read path
(settlements.pgcounter, the preview on the event loop aside) is what answers.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import subprocess
import sys
from typing import Any

import pytest
from service_helpers import ROOT, example, register
from sqlalchemy import func, select

from settlement.service import logmask
from settlement.service.auth.service import create_key
from settlement.service.settlements.models import Settlement

JSON = {"Content-Type": "application/json"}
EX01 = example("EX-01")  # H0002, level 2 (conftest registers H0002 at level 2)
PERSON = EX01["patient"]["person_id"]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    return dict(body)


def settled_count(app: Any) -> int:
    with app.state.ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Settlement)) or 0)


# -- 1. the hospital registry ---------------------------------------------------------------


def test_hospital_registry_is_audited_and_admin_only(client, auth, keys):
    entry = {"name": "哈尔滨市第一医院", "level": 3, "district": "230102"}
    created = client.put("/v1/hospitals/H0100", json=entry, headers=auth["admin"])
    assert created.status_code == 201, created.text
    assert created.json()["level"] == 3 and created.json()["name"] == entry["name"]
    same = client.put("/v1/hospitals/H0100", json=entry, headers=auth["admin"])
    assert same.status_code == 200
    changed = client.put("/v1/hospitals/H0100", json={**entry, "level": 2}, headers=auth["admin"])
    assert changed.status_code == 200 and changed.json()["level"] == 2
    for role in ("hospital", "reviewer", "insurer"):
        problem(client.put("/v1/hospitals/H0100", json=entry, headers=auth[role]), 403, "forbidden")
    history = client.get("/v1/hospitals/H0100/history", headers=auth["reviewer"]).json()
    admin_key_id = keys["admin"].split("_")[1]
    # two records: the PUT that changed nothing recorded nothing
    assert [(h["before"], h["after"]) for h in history] == [(None, entry), (entry, {**entry, "level": 2})]
    assert {h["actor"] for h in history} == {admin_key_id}
    assert client.get("/v1/hospitals/H0100", headers=auth["hospital"]).json()["level"] == 2
    listed = [h["hospital_id"] for h in client.get("/v1/hospitals", headers=auth["insurer"]).json()]
    assert "H0100" in listed and "H0002" in listed
    problem(client.get("/v1/hospitals/H0404", headers=auth["admin"]), 404, "not_found")
    problem(client.get("/v1/hospitals/H0404/history", headers=auth["admin"]), 404, "not_found")
    problem(client.get("/v1/hospitals/H0100/history", headers=auth["hospital"]), 403, "forbidden")
    for bad in ({**entry, "level": 4}, {**entry, "district": "2301"}, {**entry, "x": 1}):  # not the schema: 400
        assert client.put("/v1/hospitals/H0100", json=bad, headers=auth["admin"]).status_code == 400, bad
    problem(client.put("/v1/hospitals/H0100", json={**entry, "name": " "}, headers=auth["admin"]), 422,
            "invalid_request")  # the schema's, refused by the identifier rule


def test_the_counter_settles_at_the_registry_level(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    stated = copy.deepcopy(EX01)
    stated["hospital"]["level"] = 3  # H0002 is level 2 in the registry
    body = problem(client.post("/v1/settlements", json=stated, headers=auth["hospital"]), 422,
                   "hospital_level_mismatch")
    assert "level 3" in body["detail"] and "level 2" in body["detail"] and body["claim_id"] == "EX-01"
    problem(client.post("/v1/settlements/preview", json=stated, headers=auth["hospital"]), 422,
            "hospital_level_mismatch")
    omitted = copy.deepcopy(EX01)
    del omitted["hospital"]["level"]
    preview = client.post("/v1/settlements/preview", json=omitted, headers=auth["hospital"])
    at_level_2 = client.post("/v1/settlements/preview", json=EX01, headers=auth["hospital"])
    assert preview.status_code == at_level_2.status_code == 200
    assert preview.json()["amounts"] == at_level_2.json()["amounts"]
    assert preview.json()["amounts"]["deductible"] == "225.00"  # SPEC example EX-01 at level 2
    first = client.post("/v1/settlements", json=omitted, headers=auth["hospital"])
    assert first.status_code == 201, first.text
    # stating the registry's level or leaving it out is the same claim: a replay, not a 409
    replay = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["settlement_id"] == first.json()["settlement_id"]
    assert settled_count(app) == 1
    # the registry changes: the counter follows it (level 3's deductible is higher)
    entry = {"name": "H0002", "level": 3, "district": "230102"}
    assert client.put("/v1/hospitals/H0002", json=entry, headers=auth["admin"]).status_code == 200
    again = copy.deepcopy(omitted)
    again["claim_id"] = "EX-01-level-3"
    at_3 = client.post("/v1/settlements/preview", json=again, headers=auth["hospital"])
    assert at_3.status_code == 200 and at_3.json()["amounts"]["deductible"] != "225.00"
    problem(client.post("/v1/settlements", json=EX01 | {"claim_id": "EX-01-2"}, headers=auth["hospital"]), 422,
            "hospital_level_mismatch")


def test_a_hospital_not_registered_is_refused(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    with app.state.ctx.db.write() as session:
        key = create_key(session, "hospital", hospital_id="H0404")
        session.commit()
    claim = copy.deepcopy(EX01)
    claim["hospital"] = {"id": "H0404"}
    headers = {"Authorization": f"Bearer {key}"}
    for path in ("/v1/settlements", "/v1/settlements/preview"):
        body = problem(client.post(path, json=claim, headers=headers), 422, "hospital_not_registered")
        assert "H0404" in body["detail"]
    assert settled_count(app) == 0


# -- 3. 5. strict requests --------------------------------------------------------------------


def test_nul_and_control_characters_are_4xx_never_500(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]

    def claim(**change: Any) -> dict[str, Any]:
        c = copy.deepcopy(EX01)
        c["claim_id"] = "NUL-" + str(len(change))
        for path, value in change.items():
            *parents, last = path.split("__")
            target = c
            for p in parents:
                target = target[int(p)] if p.isdigit() else target[p]
            target[last] = value
        return c

    bodies = [
        claim(claim_id="A\x00B"), claim(hospital__id="H0002\x00"), claim(patient__person_id=PERSON + "\x00"),
        claim(claim_id="A\u202eB"), claim(claim_id=" "), claim(claim_id="A\nB"), claim(claim_id=" A"),
        claim(items__0__code="X\x00"), claim(diagnosis__primary="J18\x00"), claim(claim_id="\u2066A\u2069"),
    ]
    for body in bodies:
        for path in ("/v1/settlements", "/v1/settlements/preview"):
            answer = client.post(path, json=body, headers=auth["hospital"])
            assert answer.status_code == 422 and answer.json()["code"] == "invalid_claim", (body, answer.text)
    for reason in ("a\x00b", " ", "\u202e"):
        answer = client.post(f"/v1/settlements/{sid}/reversal", json={"reason": reason}, headers=auth["hospital"])
        assert answer.status_code == 422, (reason, answer.text)
    gets = [
        "/v1/persons/a%00b", "/v1/persons/a%00b/accumulators", "/v1/settlements/a%00b", "/v1/hospitals/H%00",
        "/v1/hospitals/H%00/history", "/v1/settlements?hospital_id=H%00", "/v1/settlements?person_id=%00",
        "/v1/settlements?claim_id=%E2%80%AE", "/v1/settlements?claim_id=", "/v1/settlements?cursor=%00",
        "/v1/funds/poverty_relief%00/pools/2018", "/v1/schedules/a%00", "/v1/statements?fund=%00",
        "/v1/previews?person_id=%00",
    ]
    for url in gets:
        answer = client.get(url, headers=auth["admin"])
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_request", (url, answer.text)
    problem(client.post(f"/v1/settlements/{sid}%00/reversal", headers=auth["hospital"]), 400, "invalid_request")
    problem(client.put("/v1/persons/a%00b", json={}, headers=auth["admin"]), 400, "invalid_request")
    assert client.get(f"/v1/settlements/{sid}", headers=auth["admin"]).json()["status"] == "settled"
    assert settled_count(app) == 1


def test_nul_in_review_bodies_and_reconciliation_files_is_4xx(client, auth):
    register(client, auth["reviewer"], PERSON)
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]
    for note in ("a\u0000b", "a\u202eb"):  # each was a 500 on PostgreSQL (NUL) or stored (override)
        problem(client.post(f"/v1/settlements/{sid}/reviews", json={"decision": "comment", "note": note},
                            headers=auth["reviewer"]), 400, "invalid_request")
        problem(client.post("/v1/settlements/approvals", json={"filter": {}, "count": 1, "total": "2368.00",
                            "note": note}, headers=auth["reviewer"]), 400, "invalid_request")
    assert client.post(f"/v1/settlements/{sid}/reviews", json={"decision": "comment", "note": "第一行\n\t第二行"},
                       headers=auth["reviewer"]).status_code == 201
    for field in ("hospital_id", "person_id", "claim_id", "disease_group", "fund"):
        problem(client.post("/v1/settlements/approvals", json={"filter": {field: "a\u0000b"}, "count": 0,
                            "total": "0"}, headers=auth["reviewer"]), 400, "invalid_request")
    fields = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % pair
        for pair in ((b"fund", b"basic"), (b"from", b"2019-01-01"), (b"to", b"2019-12-31"))
    )
    multipart = {**auth["insurer"], "Content-Type": "multipart/form-data; boundary=B"}
    for filename, cell in ((b"a\x00b.csv", b"H0002"), (b"a\xe2\x80\xaeb.csv", b"H0002"), (b"a.csv", b"H\x00")):
        upload = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n\r\n'
                  b"hospital_id,claim_id,amount\r\n%s,EX-01,1.00\r\n--B--\r\n" % (filename, cell))
        answer = client.post("/v1/reconciliations", content=fields + upload, headers=multipart)
        assert answer.status_code in (400, 422), answer.text  # the file's name 400, a cell 422 invalid_file


def test_duplicate_json_keys_are_invalid_claims(client, auth, app, tmp_path):
    register(client, auth["reviewer"], PERSON)
    text = json.dumps(EX01).replace('"patient": {', '"patient": {"person_id": "232721201604050056", ', 1)
    assert text.count('"person_id"') == 2
    for path in ("/v1/settlements", "/v1/settlements/preview"):
        body = problem(client.post(path, content=text, headers=JSON | auth["hospital"]), 422, "invalid_claim")
        assert body["errors"] == [{"field": "patient.person_id", "message": "duplicate key"}]
    assert settled_count(app) == 0
    # the batch agrees: the same line is an invalid_claim error line, on the columnar path and off it
    lines = tmp_path / "claims.jsonl"
    lines.write_text(text.replace(" ", "") + "\n" + text + "\n" + json.dumps(EX01) + "\n")
    schedules = str(ROOT / "fee_schedules" / "heilongjiang")
    out = subprocess.run([sys.executable, "-m", "settlement.cli", "settle", "--schedules", schedules, str(lines)],
                         capture_output=True, check=False, cwd=ROOT, timeout=300, text=True).stdout
    results = [json.loads(line) for line in out.splitlines()]
    assert [r.get("error", {}).get("code") for r in results] == ["invalid_claim", "invalid_claim", None]
    assert "patient.person_id" in results[0]["error"]["message"]


def test_duplicate_json_keys_in_every_body_are_refused(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]
    period = '{"category": "none", "valid_from": "2018-01-01"}'
    for method, path, text, key in (
        ("PUT", f"/v1/persons/{PERSON}", f'{{"scheme": "resident", "categories": [{period}], "categories": []}}',
         "categories"),
        ("PUT", f"/v1/persons/{PERSON}",
         '{"scheme": "resident", "categories": [{"category": "none", "category": "registered_poor",'
         ' "valid_from": "2018-01-01"}]}', "categories[0].category"),
        ("PUT", "/v1/hospitals/H0002", '{"name": "x", "level": 1, "level": 2, "district": "230102"}', "level"),
        ("POST", f"/v1/settlements/{sid}/reviews", '{"decision": "approve", "decision": "comment"}', "decision"),
        ("POST", f"/v1/settlements/{sid}/reversal", '{"reason": "a", "reason": "b"}', "reason"),
    ):
        headers = {**auth["admin" if "reviews" not in path else "reviewer"], **JSON}
        body = problem(client.request(method, path, content=text, headers=headers), 422, "invalid_request")
        assert body["errors"][0]["field"] == key, body
    # nothing was changed by them
    assert client.get(f"/v1/persons/{PERSON}", headers=auth["admin"]).json()["categories"][0]["category"] == (
        "registered_poor")
    assert client.get("/v1/hospitals/H0002", headers=auth["admin"]).json()["level"] == 2
    assert client.get(f"/v1/settlements/{sid}", headers=auth["admin"]).json()["status"] == "settled"


def test_bodies_must_be_json(client, auth):
    register(client, auth["reviewer"], PERSON)
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]
    text = json.dumps(EX01).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = dict(auth["hospital"]) | ({"Content-Type": content_type} if content_type else {})
        for path in ("/v1/settlements", "/v1/settlements/preview", f"/v1/settlements/{sid}/reversal"):
            problem(client.post(path, content=text, headers=headers), 415, "unsupported_media_type")
        admin = dict(auth["admin"]) | ({"Content-Type": content_type} if content_type else {})
        body = b'{"name": "x", "level": 1, "district": "230102"}'
        problem(client.put("/v1/hospitals/H0100", content=body, headers=admin), 415, "unsupported_media_type")
        body = b'{"scheme": "resident", "categories": [{"category": "none", "valid_from": "2018-01-01"}]}'
        problem(client.put(f"/v1/persons/{PERSON}", content=body, headers=admin), 415, "unsupported_media_type")
    # a reversal without a body needs no Content-Type
    assert client.post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"]).status_code == 200


def test_unknown_query_parameters_on_every_route(client, auth, app):
    """Every operation of the OpenAPI document (whatever routes exist) refuses a parameter it does not declare."""
    document = client.get("/openapi.json").json()
    tried = 0
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            path = template
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    path = path.replace("{" + parameter["name"] + "}", "2018" if "year" in parameter["name"] else "x")
            answer = client.request(method.upper(), path + "?hospitl_id=1&zz=2", headers=auth["admin"])
            body = problem(answer, 400, "unknown_parameter")
            assert "hospitl_id" in body["detail"] and "zz" in body["detail"], (method, path)
            tried += 1
    assert tried >= 15
    # the misspelt filter of the issue; and the real one
    problem(client.get("/v1/settlements?hospitl_id=H0002", headers=auth["admin"]), 400, "unknown_parameter")


def test_settlements_list_by_claim_id(client, auth):
    register(client, auth["reviewer"], PERSON)
    ids = {}
    for n in range(3):
        claim = copy.deepcopy(EX01) | {"claim_id": f"CL-{n}"}
        ids[claim["claim_id"]] = client.post("/v1/settlements", json=claim, headers=auth["hospital"]).json()
    page = client.get("/v1/settlements?claim_id=CL-1", headers=auth["admin"]).json()
    assert [i["settlement_id"] for i in page["items"]] == [ids["CL-1"]["settlement_id"]]
    assert client.get("/v1/settlements?claim_id=CL-9", headers=auth["hospital"]).json()["items"] == []


def test_a_discharge_after_today_is_refused(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    today = app.state.ctx.now().astimezone(app.state.ctx.tz).date()
    future = copy.deepcopy(EX01)
    future["visit"]["discharged"] = f"{today.year + 5}-01-19"
    for path in ("/v1/settlements", "/v1/settlements/preview"):
        body = problem(client.post(path, json=future, headers=auth["hospital"]), 422, "invalid_claim")
        assert body["errors"][0]["field"] == "visit.discharged" and today.isoformat() in body["detail"]
    assert settled_count(app) == 0


def test_fund_parameters_say_which_funds(client, auth, app):
    with app.state.ctx.db.write() as session:
        limited = create_key(session, "insurer", funds=["basic"])
        session.commit()
    headers = {"Authorization": f"Bearer {limited}"}
    body = problem(client.get("/v1/funds/nope/pools/2018", headers=auth["insurer"]), 404, "not_found")
    assert "poverty_relief" in body["detail"]
    problem(client.get("/v1/funds/poverty_relief/pools/2018", headers=headers), 403, "forbidden")
    assert client.get("/v1/funds/poverty_relief/pools/2018", headers=auth["insurer"]).status_code == 200


def test_405_names_every_method_of_the_path(client, auth):
    answer = client.delete("/v1/settlements", headers=auth["admin"])
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"
    answer = client.delete("/v1/hospitals/H0002", headers=auth["admin"])
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, PUT"


# -- 9. OpenAPI is the truth: what the document refuses is 400, what a rule refuses 422 -----


def test_the_settlements_list_refuses_what_its_document_refuses(client, auth):
    for query in ("sort=bogus", "sort=+total", "flag=nope", "layer=nope", "district=23x", "district=2",
                  "total_min=1.234", "total_min=1e3", "layer_max=-1", "from=20190101", "from=0"):
        problem(client.get(f"/v1/settlements?{query}", headers=auth["reviewer"]), 400, "invalid_request")
    # allowed by the document, refused by a rule it cannot state
    problem(client.get("/v1/settlements?cursor=zzz", headers=auth["reviewer"]), 422, "invalid_request")
    problem(client.get("/v1/settlements?layer_min=1", headers=auth["reviewer"]), 422, "invalid_request")
    for query in ("sort=-total", "flag=high_total", "layer=backstop&layer_min=0.5", "district=2301",
                  "total_min=12.5"):
        assert client.get(f"/v1/settlements?{query}", headers=auth["reviewer"]).status_code == 200, query


def test_bodies_refuse_what_their_document_refuses(client, auth):
    ok = {"filter": {"settled_from": "2019-01-01"}, "count": 0, "total": "0"}
    assert client.post("/v1/settlements/approvals", json=ok, headers=auth["reviewer"]).status_code == 201
    for bad in ({**ok, "count": False}, {**ok, "count": "0"}, {**ok, "total": ""}, {**ok, "total": "1.234"},
                {**ok, "filter": {"settled_to": 0}}, {**ok, "filter": {"from": "20190101"}},
                {**ok, "filter": {"layer_min": "1"}}, {**ok, "filter": {"layer": "nope"}},
                {**ok, "filter": {"district": "23x"}}):
        problem(client.post("/v1/settlements/approvals", json=bad, headers=auth["reviewer"]), 400,
                "invalid_request")
    period = {"category": "registered_poor", "valid_from": "2018-01-01"}
    for valid_from in (0, "1514764800", "20180101", "2018-01-01T00:00:00"):  # pydantic read them as dates
        body = {"scheme": "resident", "categories": [{**period, "valid_from": valid_from}]}
        problem(client.put(f"/v1/persons/{PERSON}", json=body, headers=auth["admin"]), 400, "invalid_request")
    form = {"fund": "basic", "from": "2019-01-01", "to": "2019-12-31"}
    for bad in ({**form, "fund": ""}, {**form, "fund": "ba\u202esic"}, {**form, "from": "20190101"}):
        answer = client.post("/v1/reconciliations", data=bad, headers=auth["insurer"],
                             files={"file": ("a.csv", b"hospital_id,claim_id,amount\n")})
        problem(answer, 400, "invalid_request")


# -- 6. personal data -------------------------------------------------------------------------


def test_previews_are_recorded_and_readable_by_reviewers(client, auth, app, keys):
    register(client, auth["reviewer"], PERSON)
    assert client.post("/v1/settlements/preview", json=EX01, headers=auth["hospital"]).status_code == 200
    assert client.post("/v1/settlements/preview", json=EX01, headers=auth["hospital"]).status_code == 200
    app.state.ctx.previews.flush()  # the recorder's thread writes about every second; a test need not wait
    page = client.get(f"/v1/previews?person_id={PERSON}", headers=auth["reviewer"]).json()
    hospital_key_id = keys["hospital"].split("_")[1]
    assert [(r["actor"], r["hospital_id"], r["claim_id"]) for r in page["items"]] == [
        (hospital_key_id, "H0002", "EX-01")
    ] * 2
    assert client.get("/v1/previews?person_id=230102197001010011", headers=auth["admin"]).json()["items"] == []
    for role in ("hospital", "insurer"):
        problem(client.get("/v1/previews", headers=auth[role]), 403, "forbidden")


def test_a_district_scoped_reviewer_sees_the_previews_of_its_district_only(client, auth, app):
    from service_helpers import person_id

    from settlement.service.auth.keys import Role
    from settlement.service.auth.service import Principal
    from settlement.service.deps import current_principal

    inside, outside, nowhere = PERSON, person_id(7), person_id(8)
    for pid, district in ((inside, "230102"), (outside, "231202"), (nowhere, None)):
        entry = {"scheme": "resident", "district": district,
                 "categories": [{"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": None}]}
        assert client.put(f"/v1/persons/{pid}", json=entry, headers=auth["admin"]).status_code in (200, 201)
        claim = copy.deepcopy(EX01)
        claim["patient"]["person_id"] = pid
        assert client.post("/v1/settlements/preview", json=claim, headers=auth["hospital"]).status_code == 200
    app.state.ctx.previews.flush()
    everyone = client.get("/v1/previews", headers=auth["reviewer"]).json()["items"]
    assert sorted(r["person_id"] for r in everyone) == sorted((inside, outside, nowhere))
    app.dependency_overrides[current_principal] = lambda: Principal(
        key_id="scopedkey001", role=Role.REVIEWER, district="2301", user="clerk")
    try:
        # as the settlements and persons lists: the district's persons' previews; another's: an empty list
        assert [r["person_id"] for r in client.get("/v1/previews").json()["items"]] == [inside]
        assert client.get(f"/v1/previews?person_id={inside}").json()["items"] != []
        for pid in (outside, nowhere):
            assert client.get(f"/v1/previews?person_id={pid}").json() == {"items": [], "next_cursor": None}
    finally:
        app.dependency_overrides.pop(current_principal, None)


def test_resident_ids_are_masked_in_every_log_line():
    from uvicorn.logging import AccessFormatter, DefaultFormatter

    logmask.install()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    access = logging.getLogger("uvicorn.access.test-mask")
    access.addHandler(handler)
    access.propagate = False
    access.setLevel(logging.INFO)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/v1/persons/{PERSON}?x={PERSON.lower()}", "1.1",
                200)
    errors = logging.getLogger("settlement.test-mask")
    error_handler = logging.StreamHandler(out)
    error_handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False))
    errors.addHandler(error_handler)
    errors.propagate = False
    try:
        raise ValueError(f"person {PERSON} broke")
    except ValueError:
        errors.exception("failed for %s", PERSON)
    text = out.getvalue()
    assert PERSON not in text and PERSON.lower() not in text and "19560312" not in text
    assert text.count("230102********041X") >= 3 and "230102********041x" in text


def test_a_fund_limited_insurer_sees_only_what_its_funds_paid(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]
    with app.state.ctx.db.write() as session:
        basic = create_key(session, "insurer", funds=["basic"])
        unpaid = create_key(session, "insurer", funds=["critical_illness"])  # EX-01 draws nothing from it
        session.commit()
    as_basic = {"Authorization": f"Bearer {basic}"}
    as_unpaid = {"Authorization": f"Bearer {unpaid}"}
    seen = client.get(f"/v1/settlements/{sid}", headers=as_basic).json()
    assert seen["payments"] == {"basic": "966.48", "critical_illness": None, "medical_assistance": None,
                                "charity": None, "emergency_relief": None, "backstop": None}
    assert seen["charity_by_fund"] == {} and seen["patient_pays"] is None and seen["trace"] == []
    assert "assistance_paid" not in seen["accumulators_after"] and "basic_paid" in seen["accumulators_after"]
    listed = client.get("/v1/settlements", headers=as_basic).json()["items"]
    assert [i["settlement_id"] for i in listed] == [sid] and listed[0]["payments"]["medical_assistance"] is None
    problem(client.get(f"/v1/settlements/{sid}", headers=as_unpaid), 404, "not_found")
    assert client.get("/v1/settlements", headers=as_unpaid).json()["items"] == []
    full = client.get(f"/v1/settlements/{sid}", headers=auth["insurer"]).json()
    assert full["payments"]["medical_assistance"] == "326.63" and full["trace"]


# -- CLI ---------------------------------------------------------------------------------------


def test_no_schedule_names_no_server_path(client, auth):
    register(client, auth["reviewer"], PERSON, valid_from="2010-01-01")
    old = copy.deepcopy(EX01)
    old["visit"] = {"type": "inpatient", "admitted": "2017-03-01", "discharged": "2017-03-02"}
    body = problem(client.post("/v1/settlements", json=old, headers=auth["hospital"]), 422, "no_schedule")
    assert "/" not in body["detail"] and "heilongjiang" in body["detail"]


@pytest.mark.parametrize("omit", [True])
def test_demo_on_a_database_with_data_resets_nobody(tmp_path, omit):
    from settlement.service.config import Settings
    from settlement.service.demo import DEMO_PERSONS, existing_data, setup
    from settlement.service.migrate import upgrade
    from settlement.service.persons.repository import get_person

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'demo.db'}")
    upgrade(settings)
    assert existing_data(settings) is None
    setup(settings)
    said = existing_data(settings)
    assert said is not None and f"{len(DEMO_PERSONS)} persons" in said and "nothing registered" in said
    from settlement.service.db import make_database

    db = make_database(settings)
    person = next(iter(DEMO_PERSONS))
    with db.write() as session:  # a reviewer changes a demo person's category
        row = get_person(session, person)
        assert row is not None
        row.periods[0].category = "low_income"
        session.commit()
    setup(settings)  # --demo again
    with db.read() as session:
        row = get_person(session, person)
        assert row is not None and row.periods[0].category == "low_income"
    db.dispose()
