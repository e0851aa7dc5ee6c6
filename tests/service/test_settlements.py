"""Settle, preview, replay, conflict, reverse, read and list — through the API."""

from __future__ import annotations

import copy
import json
from typing import Any

from service_helpers import example, register
from sqlalchemy import func, select

from settlement.service.accumulators.models import PersonYear
from settlement.service.settlements.models import LedgerEntry, Settlement, SettlementEvent

JSON_HEADERS = {"Content-Type": "application/json"}
EX01 = example("EX-01")
PERSON = EX01["patient"]["person_id"]
ZERO_ACC = {
    "basic_paid": {"inpatient": "0.00", "outpatient": "0.00", "chronic_outpatient": "0.00"},
    "critical_base": "0.00",
    "critical_paid": "0.00",
    "assistance_base": "0.00",
    "assistance_paid": "0.00",
    "charity_paid": {"poverty_relief": "0.00", "children_major_illness": "0.00"},
}


def _count(app: Any, model: Any) -> int:
    with app.state.ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _accumulators(client: Any, auth: dict[str, dict[str, str]], year: int = 2018) -> dict[str, Any]:
    response = client.get(f"/v1/persons/{PERSON}/accumulators", params={"year": year}, headers=auth["reviewer"])
    assert response.status_code == 200, response.text
    body = response.json()
    return {k: v for k, v in body.items() if k not in ("person_id", "policy_year")}


def test_settle_returns_201_with_result_trace_and_accumulators(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    response = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "settled"
    assert body["hospital_id"] == "H0002"
    assert body["settlement_id"] and body["settled_at"].endswith("Z")
    assert body["schedule"] == "heilongjiang-2018" and body["policy_year"] == 2018
    assert body["payments"] == {
        "basic": "966.48", "critical_illness": "0.00", "medical_assistance": "326.63",
        "charity": "537.45", "emergency_relief": "0.00", "backstop": "300.64",
    }
    assert body["patient_pays"] == "236.80"
    assert body["scheme"] == "resident" and body["category"] == "registered_poor"
    layers = [step["layer"] for step in body["trace"]]
    assert layers[0] == "bill" and "basic" in layers and layers[-1] == "patient"
    assert all(step["text"] for step in body["trace"])
    after = body["accumulators_after"]
    assert after["basic_paid"]["inpatient"] == "966.48"
    assert after["charity_paid"]["poverty_relief"] == "537.45"
    assert after["pool_used"] == {"poverty_relief": "537.45"}
    assert _count(app, Settlement) == 1
    # the same stored result, with its trace, on GET — in the same key order — plus its review status and flags
    got = client.get(f"/v1/settlements/{body['settlement_id']}", headers=auth["reviewer"])
    assert got.status_code == 200
    stored = got.json()
    assert stored.pop("review_status") == "pending" and stored.pop("flags") == []
    assert list(stored.items()) == list(body.items())


def test_same_claim_again_replays_the_first_result(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    first = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    # the same claim, written differently: keys reordered, numbers as strings, scheme/category left out
    again = copy.deepcopy(EX01)
    again["items"] = [{**item, "quantity": str(item["quantity"])} for item in again["items"]]
    again["patient"] = {"person_id": PERSON}
    text = json.dumps(dict(reversed(list(again.items()))))
    second = client.post("/v1/settlements", content=text, headers=JSON_HEADERS | auth["hospital"])
    assert second.status_code == 200, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert _count(app, Settlement) == 1
    assert _accumulators(client, auth)["basic_paid"]["inpatient"] == "966.48"  # counted once


def test_another_claim_under_the_same_claim_id_is_409(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    assert client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).status_code == 201
    other = copy.deepcopy(EX01)
    other["items"][0]["quantity"] = 12
    response = client.post("/v1/settlements", json=other, headers=auth["hospital"])
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "claim_conflict" and problem["claim_id"] == "EX-01"
    assert _count(app, Settlement) == 1
    # the same claim_id at another hospital is another claim
    register(client, auth["reviewer"], PERSON)
    at_other = copy.deepcopy(EX01)
    at_other["hospital"] = {"id": "H0031"}  # at its registered level (3)
    assert client.post("/v1/settlements", json=at_other, headers=auth["H0031"]).status_code == 201


def test_preview_stores_nothing(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    response = client.post("/v1/settlements/preview", json=EX01, headers=auth["hospital"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "preview" and body["settlement_id"] is None and body["settled_at"] is None
    assert body["payments"]["basic"] == "966.48" and body["trace"]
    assert body["accumulators_after"]["basic_paid"]["inpatient"] == "966.48"
    assert _count(app, Settlement) == 0 and _count(app, LedgerEntry) == 0 and _count(app, PersonYear) == 0
    assert _accumulators(client, auth) == ZERO_ACC
    # preview on current accumulators: after a settlement, the same claim previews with less room
    settled = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()
    again = client.post("/v1/settlements/preview", json=EX01, headers=auth["hospital"]).json()
    assert again["accumulators_after"]["basic_paid"]["inpatient"] == "1932.96"
    assert _count(app, Settlement) == 1
    assert settled["payments"] == body["payments"]


def test_reversal_negates_and_restores_accumulators_and_pools(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    settled = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()
    sid = settled["settlement_id"]
    pool = client.get("/v1/funds/poverty_relief/pools/2018", headers=auth["insurer"]).json()
    assert pool["used"] == "537.45"
    reason = {"reason": "billing error"}
    response = client.post(f"/v1/settlements/{sid}/reversal", json=reason, headers=auth["hospital"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "reversed" and body["reversed_at"]
    assert body["payments"] == settled["payments"]  # the money of the record is never edited
    assert _accumulators(client, auth) == ZERO_ACC
    pool = client.get("/v1/funds/poverty_relief/pools/2018", headers=auth["insurer"]).json()
    assert pool == {**pool, "used": "0.00", "remaining": "2000000.00"}
    # again: the same answer, nothing more written
    again = client.post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"])
    assert again.status_code == 200 and again.json() == body
    with app.state.ctx.db.read() as session:
        entries = session.execute(select(LedgerEntry.kind, LedgerEntry.fund, LedgerEntry.amount_fen)).all()
        events = session.scalars(select(SettlementEvent.kind).order_by(SettlementEvent.seq)).all()
    assert events == ["settled", "reversed"]
    settled_sum = sum(a for k, _, a in entries if k == "settled")
    reversed_sum = sum(a for k, _, a in entries if k == "reversed")
    assert settled_sum == 236800 and reversed_sum == -236800
    assert sorted((f, a) for k, f, a in entries if k == "settled") == sorted(
        (f, -a) for k, f, a in entries if k == "reversed"
    )
    # the reversed claim replays as reversed; admin may reverse too (idempotent)
    replay = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert replay.status_code == 200 and replay.json()["status"] == "reversed"
    assert client.post(f"/v1/settlements/{sid}/reversal", headers=auth["admin"]).json() == body


def test_reverse_then_settle_again_under_a_new_claim_id_gives_the_original_amounts(client, auth):
    register(client, auth["reviewer"], PERSON)
    ex02 = example("EX-02")
    ex02["hospital"] = {"id": "H0002"}  # at its registered level (2)
    # a first claim so that the accumulators are not empty
    assert client.post("/v1/settlements", json=ex02, headers=auth["hospital"]).status_code == 201
    original = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()
    before = _accumulators(client, auth)
    sid = original["settlement_id"]
    assert client.post(f"/v1/settlements/{sid}/reversal", headers=auth["hospital"]).status_code == 200
    again = copy.deepcopy(EX01)
    again["claim_id"] = "EX-01-bis"
    resettled = client.post("/v1/settlements", json=again, headers=auth["hospital"])
    assert resettled.status_code == 201
    body = resettled.json()
    for key in ("amounts", "payments", "charity_by_fund", "patient_pays", "hospital_bears", "pathway"):
        assert body[key] == original[key], key
    assert body["accumulators_after"] == original["accumulators_after"]
    assert _accumulators(client, auth) == before


def test_fixed_standard_reversal_returns_only_charity(client, auth):
    ex06 = example("EX-06")  # esophageal cancer surgery: fixed standard
    pid = ex06["patient"]["person_id"]
    register(client, auth["reviewer"], pid, "resident", "extreme_poverty")
    settled = client.post("/v1/settlements", json=ex06, headers=auth["H0031"])
    assert settled.status_code == 201, settled.text
    body = settled.json()
    assert body["pathway"] == "single_disease"
    after = body["accumulators_after"]
    # outside the annual caps: only charity moved
    assert after["basic_paid"]["inpatient"] == "0.00" and after["critical_base"] == "0.00"
    assert after["charity_paid"]["poverty_relief"] == body["charity_by_fund"]["poverty_relief"]
    client.post(f"/v1/settlements/{body['settlement_id']}/reversal", headers=auth["H0031"])
    acc = client.get(f"/v1/persons/{pid}/accumulators?year=2018", headers=auth["admin"]).json()
    assert acc["charity_paid"]["poverty_relief"] == "0.00"


def test_list_filters_and_cursor_pagination(client, auth):
    register(client, auth["reviewer"], PERSON)
    ex03 = example("EX-03")
    register(client, auth["reviewer"], ex03["patient"]["person_id"], "resident", "extreme_poverty")
    ids = []
    for n in range(5):
        claim = copy.deepcopy(EX01)
        claim["claim_id"] = f"L-{n}"
        ids.append(client.post("/v1/settlements", json=claim, headers=auth["hospital"]).json()["settlement_id"])
    ex03["hospital"] = {"id": "H0031"}  # at its registered level
    other = client.post("/v1/settlements", json=ex03, headers=auth["H0031"]).json()
    client.post(f"/v1/settlements/{ids[1]}/reversal", headers=auth["hospital"])

    def listing(headers: dict[str, str], **params: Any) -> list[str]:
        response = client.get("/v1/settlements", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [item["settlement_id"] for item in response.json()["items"]]

    assert listing(auth["admin"]) == [*ids, other["settlement_id"]]
    assert listing(auth["hospital"]) == ids  # a hospital sees its own only
    assert listing(auth["hospital"], hospital_id="H0031") == []
    assert listing(auth["H0031"]) == [other["settlement_id"]]
    assert listing(auth["reviewer"], hospital_id="H0031") == [other["settlement_id"]]
    assert listing(auth["insurer"], status="reversed") == [ids[1]]
    assert listing(auth["insurer"], status="settled", hospital_id="H0002") == [ids[0], *ids[2:]]
    assert listing(auth["admin"], person_id=PERSON.lower()) == ids
    assert listing(auth["admin"], category="extreme_poverty") == [other["settlement_id"]]
    assert listing(auth["admin"], pathway="single_disease") == []
    assert listing(auth["admin"], disease_group="gastric_cancer") == []
    assert listing(auth["admin"], **{"from": "2018-04-01"}) == [other["settlement_id"]]
    assert listing(auth["admin"], to="2018-01-31") == ids
    assert listing(auth["admin"], **{"from": "2018-01-19", "to": "2018-01-19"}) == ids
    # pages of two, by cursor
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/settlements", params=params, headers=auth["admin"]).json()
        seen += [item["settlement_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [*ids, other["settlement_id"]] and pages == 3
    item = client.get("/v1/settlements", params={"limit": 1}, headers=auth["admin"]).json()["items"][0]
    assert "trace" not in item and item["payments"]["basic"] == "966.48"
    bad = client.get("/v1/settlements", params={"cursor": "nonsense!"}, headers=auth["admin"])
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"  # any text is a cursor by the document
    bad = client.get("/v1/settlements", params={"status": "lost"}, headers=auth["admin"])
    assert bad.status_code == 400


def test_registry_decides_identity_by_admission_date(client, auth):
    # registered_poor until the day before admission, then low_income
    body = {
        "scheme": "resident",
        "categories": [
            {"category": "registered_poor", "valid_from": "2017-01-01", "valid_to": "2018-01-07"},
            {"category": "low_income", "valid_from": "2018-01-08", "valid_to": None},
        ],
    }
    assert client.put(f"/v1/persons/{PERSON}", json=body, headers=auth["reviewer"]).status_code == 201
    claim = copy.deepcopy(EX01)
    claim["patient"] = {"person_id": PERSON}
    response = client.post("/v1/settlements/preview", json=claim, headers=auth["hospital"])
    assert response.status_code == 200
    assert response.json()["category"] == "low_income"
    # the claim states registered_poor: the registry says otherwise
    mismatch = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "identity_mismatch"


def test_statement_per_hospital_and_fund_json_and_csv(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    settled = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()
    claim = copy.deepcopy(EX01)
    claim["claim_id"] = "EX-01-2"
    second = client.post("/v1/settlements", json=claim, headers=auth["hospital"]).json()
    client.post(f"/v1/settlements/{settled['settlement_id']}/reversal", headers=auth["hospital"])
    day = app.state.ctx.business_date(app.state.ctx.now()).isoformat()
    params = {"fund": "basic", "from": day, "to": day, "by": "day"}
    response = client.get("/v1/statements", params=params, headers=auth["insurer"])
    assert response.status_code == 200, response.text
    [row] = response.json()["rows"]
    assert row == {
        "period": day, "hospital_id": "H0002", "fund": "basic", "adjusts": None,
        "settlements": 2, "reversals": 1, "amount": second["payments"]["basic"],
    }
    assert response.json()["totals"] == {"settlements": 2, "reversals": 1, "amount": second["payments"]["basic"]}
    one = client.get("/v1/statements", params={**params, "fund": "poverty_relief"}, headers=auth["admin"]).json()
    assert [r["fund"] for r in one["rows"]] == ["poverty_relief"]
    csv = client.get("/v1/statements", params=params, headers={**auth["insurer"], "Accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.content.decode("utf-8-sig").strip().splitlines()
    assert lines[0] == "期间,医疗机构编码,基金,调整所属期间,结算笔数,撤销笔数,金额"
    assert lines[1] == f"{day},H0002,basic,,2,1,{second['payments']['basic']}"
    empty = client.get(
        "/v1/statements", params={**params, "from": "2001-01-01", "to": "2001-01-31"}, headers=auth["insurer"]
    ).json()
    assert empty["rows"] == []


def test_insurer_key_limited_to_funds(client, auth, app):
    from settlement.service.auth.service import create_key

    with app.state.ctx.db.write() as session:
        key = create_key(session, "insurer", funds=["poverty_relief"])
        session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    register(client, auth["reviewer"], PERSON)
    client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    day = app.state.ctx.business_date(app.state.ctx.now()).isoformat()
    params = {"from": day, "to": day}
    rows = client.get("/v1/statements", params={**params, "fund": "poverty_relief"}, headers=headers).json()["rows"]
    assert [r["fund"] for r in rows] == ["poverty_relief"]
    assert client.get("/v1/statements", params={**params, "fund": "basic"}, headers=headers).status_code == 403
    assert client.get("/v1/funds/poverty_relief/pools/2018", headers=headers).status_code == 200
    assert client.get("/v1/funds/children_major_illness/pools/2018", headers=headers).status_code == 403


def test_pools_and_schedules(client, auth):
    pool = client.get("/v1/funds/poverty_relief/pools/2019", headers=auth["reviewer"])
    assert pool.status_code == 200
    assert pool.json() == {
        "fund_id": "poverty_relief", "name": "扶贫专项救助基金", "policy_year": 2019,
        "schedule": "heilongjiang-2019", "pool": "2500000.00", "used": "0.00", "remaining": "2500000.00",
    }
    assert client.get("/v1/funds/nope/pools/2018", headers=auth["admin"]).status_code == 404
    assert client.get("/v1/funds/poverty_relief/pools/2001", headers=auth["admin"]).status_code == 404
    listing = client.get("/v1/schedules", headers=auth["hospital"])
    assert listing.status_code == 200
    versions = listing.json()
    assert [v["id"] for v in versions] == ["heilongjiang-2018", "heilongjiang-2019"]
    assert versions[0]["effective_to"] == "2018-12-31" and versions[1]["effective_to"] is None
    one = client.get("/v1/schedules/heilongjiang-2019", headers=auth["insurer"]).json()
    assert one["parameters"]["basic"]["sections"]["resident.inpatient"]["annual_cap"] == "150000.00"
    assert one["parameters"]["basic"]["sections"]["resident.inpatient"]["rate"]["1"] == "0.85"
    assert client.get("/v1/schedules/nope", headers=auth["insurer"]).status_code == 404


def test_counter_routes_keep_their_route_labels_and_the_openapi_description(client, auth, app):
    # POST /v1/settlements and /preview are dispatched ahead of FastAPI's router
    # (service.counter_routes): the latency histogram still labels them with their route, and the
    # OpenAPI description still has them with the claim schema
    from prometheus_client import REGISTRY

    def count(route: str, status: str) -> float:
        labels = {"method": "POST", "route": route, "status": status}
        return REGISTRY.get_sample_value("settlement_http_request_duration_seconds_count", labels) or 0.0

    register(client, auth["admin"], PERSON, "resident", "registered_poor")
    before = count("/v1/settlements", "201"), count("/v1/settlements/preview", "200")
    assert client.post("/v1/settlements/preview", json=EX01, headers=auth["hospital"]).status_code == 200
    assert client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).status_code == 201
    assert (count("/v1/settlements", "201"), count("/v1/settlements/preview", "200")) == (before[0] + 1, before[1] + 1)
    # refused before the handler (the body bound) and by it (a claim error): labelled with the route too
    refused = count("/v1/settlements", "413"), count("/v1/settlements/preview", "422")
    big = b" " * (app.state.ctx.settings.max_body_bytes + 1)
    assert client.post("/v1/settlements", content=big, headers=JSON_HEADERS | auth["hospital"]).status_code == 413
    preview = client.post("/v1/settlements/preview", content=b"{}", headers=JSON_HEADERS | auth["hospital"])
    assert preview.status_code == 422
    after = count("/v1/settlements", "413"), count("/v1/settlements/preview", "422")
    assert after == (refused[0] + 1, refused[1] + 1)
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/settlements"] and "post" in paths["/v1/settlements/preview"]
    assert "claim_id" in json.dumps(paths["/v1/settlements"]["post"]["requestBody"])


REVERSAL_BODIES = [
    b"", b"{}", b'{"reason": null}', b'{"reason": "billing error"}', ('{"reason": "' + "错" * 2000 + '"}').encode(),
    b'{"reason": "' + b"x" * 2001 + b'"}', b'{"reason": 5}', b'{"reason": "a", "note": 1}', b"[]", b"null",
    b" ", b'"billing error"', b"{", b'{"reason": "\\ud800"}',
]


def test_reversal_bodies_are_read_as_the_declared_body_reads_them():
    # the counter (service.counter_routes) reads a reversal's body itself: as FastAPI reads the
    # declared `ReversalIn | None` body (no body or null: no reason), refusing what it refuses
    import pytest
    from fastapi.exceptions import RequestValidationError
    from pydantic import TypeAdapter, ValidationError

    from settlement.service.errors import ServiceError
    from settlement.service.settlements.router import reversal_reason
    from settlement.service.settlements.schemas import ReversalIn

    model = TypeAdapter(ReversalIn | None)
    read = 0
    for raw in REVERSAL_BODIES:
        try:
            expected = model.validate_json(raw) if raw else None
        except ValidationError:
            with pytest.raises(RequestValidationError) as refused:
                reversal_reason(raw, "Bearer some-key")
            assert all(e["loc"][0] == "body" for e in refused.value.errors()), raw[:40]
            with pytest.raises(ServiceError) as no_key:  # 401 before the body is judged
                reversal_reason(raw, None)
            assert no_key.value.status == 401
            continue
        read += 1
        assert reversal_reason(raw, None) == (expected.reason if expected is not None else None), raw[:40]
    assert read == 6  # none, {}, null reason, a reason, a long one, and null


def test_refused_reversal_bodies_are_answered_as_fastapi_answers_them(client, auth, app):
    from prometheus_client import REGISTRY

    route = "/v1/settlements/{settlement_id}/reversal"

    def count() -> float:
        return sum(
            REGISTRY.get_sample_value(
                "settlement_http_request_duration_seconds_count", {"method": "POST", "route": route, "status": s}
            )
            or 0.0
            for s in ("200", "400")
        )

    register(client, auth["reviewer"], PERSON)
    sid = client.post("/v1/settlements", json=EX01, headers=auth["hospital"]).json()["settlement_id"]
    before = count()
    headers = {**auth["hospital"], "content-type": "application/json"}
    for raw in (b'{"reason": 5}', b"{", b" "):
        answer = client.post(f"/v1/settlements/{sid}/reversal", content=raw, headers=headers)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_request", (raw, answer.text)
    assert client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()["status"] == "settled"
    # an extra key: refused by the model (ReversalIn forbids extra keys), naming the key
    extra = client.post(f"/v1/settlements/{sid}/reversal", content=b'{"reason": "a", "note": 1}', headers=headers)
    assert extra.status_code == 400 and extra.json()["errors"][0]["field"] == "note", extra.text
    answer = client.post(f"/v1/settlements/{sid}/reversal", content=b'{"reason": "a"}', headers=headers)
    assert answer.status_code == 200 and answer.json()["status"] == "reversed", answer.text
    # and again: the same stored answer
    again = client.post(f"/v1/settlements/{sid}/reversal", content=b'{"reason": "b"}', headers=headers)
    assert again.status_code == 200 and again.json() == answer.json()
    assert count() == before + 6  # each request timed once


def test_the_counters_paths_answer_other_methods_as_every_path_does(client, auth):
    # the counter's routes are not FastAPI's (service.counter_routes): another method is still a 405
    # naming the document's methods, and the paths FastAPI shares still reach its routes
    reversal = client.put("/v1/settlements/S-1/reversal", headers=auth["hospital"])
    assert reversal.status_code == 405 and reversal.headers["allow"] == "POST", reversal.text
    assert reversal.json()["code"] == "method_not_allowed"
    preview = client.delete("/v1/settlements/preview", headers=auth["hospital"])
    assert preview.status_code == 405 and preview.headers["allow"] == "POST", preview.text
    listing = client.put("/v1/settlements", headers=auth["hospital"])
    assert listing.status_code == 405 and listing.headers["allow"] == "GET, POST", listing.text
    assert client.get("/v1/settlements", headers=auth["reviewer"]).status_code == 200
    unknown = client.post("/v1/settlements/preview?x=1", json=EX01, headers=auth["hospital"])
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_parameter", unknown.text
    text = client.post("/v1/settlements", content=b"{}", headers={**auth["hospital"], "content-type": "text/plain"})
    assert text.status_code == 415, text.text
