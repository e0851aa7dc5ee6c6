"""The review workflow and the review queue's list through the API: decisions, history, bulk approval,
flags materialized by the refresher, filters, sort, totals and export."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
from typing import Any

import openpyxl
import pytest
from service_helpers import example, register

from settlement.service.errors import ServiceError
from settlement.service.reviews.flags import refresh
from settlement.service.reviews.rules import rules_at

EX01 = example("EX-01")
PERSON = EX01["patient"]["person_id"]
NO_MARGIN = dt.timedelta(0)


def settle(
    client: Any, auth: dict[str, dict[str, str]], claim: dict[str, Any], hospital: str = "hospital"
) -> dict[str, Any]:
    response = client.post("/v1/settlements", json=claim, headers=auth[hospital])
    assert response.status_code == 201, response.text
    return dict(response.json())


def settle_ex01(client: Any, auth: dict[str, dict[str, str]], n: int = 1) -> list[dict[str, Any]]:
    register(client, auth["reviewer"], PERSON)
    out = []
    for i in range(n):
        claim = copy.deepcopy(EX01)
        claim["claim_id"] = f"R-{i}"
        out.append(settle(client, auth, claim))
    return out


def run_refresher(app: Any) -> Any:
    return refresh(app.state.ctx.db, rules_at(None), margin=NO_MARGIN)


def review(client: Any, headers: dict[str, str], sid: str, decision: str, note: str | None = None) -> Any:
    body: dict[str, Any] = {"decision": decision}
    if note is not None:
        body["note"] = note
    return client.post(f"/v1/settlements/{sid}/reviews", json=body, headers=headers)


def test_decisions_are_records_and_the_latest_sets_the_status(client, auth):
    (s,) = settle_ex01(client, auth)
    sid = s["settlement_id"]
    got = client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()
    assert got["review_status"] == "pending" and got["flags"] == []

    first = review(client, auth["reviewer"], sid, "query", "床位费天数请说明")
    assert first.status_code == 201, first.text
    record = first.json()
    assert record["decision"] == "query" and record["note"] == "床位费天数请说明"
    assert record["actor"] and record["settlement_id"] == sid and record["at"].endswith("Z")
    assert client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()["review_status"] == "queried"

    assert review(client, auth["admin"], sid, "comment", "医院已回复").status_code == 201
    assert client.get(f"/v1/settlements/{sid}", headers=auth["admin"]).json()["review_status"] == "queried"
    assert review(client, auth["reviewer"], sid, "recover", "超标准收费，追回").status_code == 201
    assert review(client, auth["reviewer"], sid, "approve").status_code == 201  # approve needs no note

    history = client.get(f"/v1/settlements/{sid}/reviews", headers=auth["reviewer"]).json()
    assert [r["decision"] for r in history] == ["query", "comment", "recover", "approve"]
    assert [r["id"] for r in history] == sorted(r["id"] for r in history)
    assert history[0] == record  # records never change
    assert client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()["review_status"] == "approved"
    # the hospital reads its own settlement's history (a query asks it to explain)
    assert client.get(f"/v1/settlements/{sid}/reviews", headers=auth["hospital"]).status_code == 200
    assert client.get(f"/v1/settlements/{sid}/reviews", headers=auth["H0031"]).status_code == 404


def test_who_may_review_and_what_a_decision_needs(client, auth):
    (s,) = settle_ex01(client, auth)
    sid = s["settlement_id"]
    for role in ("hospital", "insurer"):
        refused = review(client, auth[role], sid, "approve")
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    for decision in ("query", "recover"):
        for note in (None, "", "   "):
            missing = review(client, auth["reviewer"], sid, decision, note)
            assert missing.status_code == 422, missing.text
            assert missing.json()["code"] == "note_required"
    assert review(client, auth["reviewer"], sid, "reject", "x").status_code == 400
    unknown_key = client.post(f"/v1/settlements/{sid}/reviews", json={"decision": "approve", "by": "me"},
                              headers=auth["reviewer"])
    assert unknown_key.status_code == 400
    assert review(client, auth["reviewer"], "no-such-settlement", "approve").status_code == 404
    assert client.get(f"/v1/settlements/{sid}/reviews", headers=auth["reviewer"]).json() == []


def test_flags_are_materialized_by_the_refresher_with_figures_and_threshold(client, auth, app):
    (s,) = settle_ex01(client, auth)  # EX-01: backstop 300.64
    sid = s["settlement_id"]
    assert client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()["flags"] == []
    stats = run_refresher(app)
    assert stats.checked == 1 and stats.added >= 1
    flags = {f["rule"]: f for f in client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()["flags"]}
    assert flags["backstop_paid"] == {"rule": "backstop_paid", "name": "兜底支付",
                                      "figures": {"backstop": "300.64"}, "threshold": {}}
    assert run_refresher(app).checked == 0  # nothing new: nothing evaluated again
    listed = client.get("/v1/settlements", params={"flag": "backstop_paid"}, headers=auth["reviewer"]).json()
    assert [i["settlement_id"] for i in listed["items"]] == [sid]
    assert listed["items"][0]["flags"] and listed["items"][0]["review_status"] == "pending"
    assert client.get("/v1/settlements", params={"flag": "high_total"}, headers=auth["reviewer"]).json()["items"] == []
    bad = client.get("/v1/settlements", params={"flag": "nonsense"}, headers=auth["reviewer"])
    assert bad.status_code == 400 and "flag" in bad.json()["detail"]


def test_person_rules_follow_later_settlements_reversals_and_registry_changes(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    first = copy.deepcopy(EX01)  # in 8 Jan, out 19 Jan 2018 at H0002
    one = settle(client, auth, first)
    again = copy.deepcopy(EX01)
    again["claim_id"] = "R-again"
    again["visit"] = {"type": "inpatient", "admitted": "2018-01-25", "discharged": "2018-01-27"}
    again["items"] = [{"code": "X000007", "quantity": 2, "unit_price": "48.50"}]
    two = settle(client, auth, again)
    run_refresher(app)

    def rules_of(sid: str) -> set[str]:
        return {f["rule"] for f in client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()["flags"]}

    assert "readmission" in rules_of(two["settlement_id"]) and "readmission" not in rules_of(one["settlement_id"])
    # the first stay reversed and settled again under a new claim id: the readmission stays (the new one
    # counts), and the new settlement is flagged as settled again after a reversal
    assert client.post(f"/v1/settlements/{one['settlement_id']}/reversal", headers=auth["hospital"]).status_code == 200
    run_refresher(app)
    assert "readmission" not in rules_of(two["settlement_id"])  # its earlier stay was undone
    redo = copy.deepcopy(EX01)
    redo["claim_id"] = "R-redo"
    three = settle(client, auth, redo)
    run_refresher(app)
    assert "resettled_after_reversal" in rules_of(three["settlement_id"])
    assert "readmission" in rules_of(two["settlement_id"])
    # a registry correction: no longer registered_poor in January 2018
    register(client, auth["reviewer"], PERSON, category="none", valid_from="2018-01-01")
    run_refresher(app)
    resource = client.get(f"/v1/settlements/{three['settlement_id']}", headers=auth["reviewer"]).json()
    changed = [f for f in resource["flags"] if f["rule"] == "category_changed_after"]
    assert changed and changed[0]["figures"]["registry_category"] == "none"
    assert changed[0]["figures"]["settled_category"] == "registered_poor"


def test_bulk_approve_confirms_the_count_and_total_it_was_shown(client, auth):
    settled = settle_ex01(client, auth, 3)
    ids = [s["settlement_id"] for s in settled]
    assert review(client, auth["reviewer"], ids[0], "query", "请说明").status_code == 201
    listing = client.get("/v1/settlements", params={"review_status": "pending"}, headers=auth["reviewer"]).json()
    assert listing["count"] == 2 and [i["settlement_id"] for i in listing["items"]] == ids[1:]
    body = {"filter": {"review_status": "pending"}, "count": 2, "total": listing["totals"]["total"], "note": "批量"}
    wrong = client.post("/v1/settlements/approvals", json={**body, "count": 3}, headers=auth["reviewer"])
    assert wrong.status_code == 409 and wrong.json()["count"] == 2 and wrong.json()["total"] == body["total"]
    wrong = client.post("/v1/settlements/approvals", json={**body, "total": "1.00"}, headers=auth["reviewer"])
    assert wrong.status_code == 409
    assert client.post("/v1/settlements/approvals", json=body, headers=auth["hospital"]).status_code == 403
    bad = client.post("/v1/settlements/approvals", json={**body, "filter": {"colour": "red"}}, headers=auth["reviewer"])
    assert bad.status_code == 400
    done = client.post("/v1/settlements/approvals", json=body, headers=auth["reviewer"])
    assert done.status_code == 201, done.text
    assert done.json()["approved"] == 2 and done.json()["total"] == body["total"]
    statuses = {i["settlement_id"]: i["review_status"] for i in
                client.get("/v1/settlements", headers=auth["reviewer"]).json()["items"]}
    assert statuses == {ids[0]: "queried", ids[1]: "approved", ids[2]: "approved"}
    for sid in ids[1:]:
        (record,) = client.get(f"/v1/settlements/{sid}/reviews", headers=auth["reviewer"]).json()
        assert record["decision"] == "approve" and record["batch_id"] == done.json()["batch_id"]
        assert record["note"] == "批量"
    # the same confirmation again: the filter now matches nothing, so it is refused
    assert client.post("/v1/settlements/approvals", json=body, headers=auth["reviewer"]).status_code == 409


def test_list_filters_sort_keyset_and_totals_over_the_whole_filter(client, auth, app):
    register(client, auth["reviewer"], PERSON)
    ex03 = example("EX-03")
    register(client, auth["reviewer"], ex03["patient"]["person_id"], "resident", "extreme_poverty")
    ids = []
    for n in range(4):
        claim = copy.deepcopy(EX01)
        claim["claim_id"] = f"L-{n}"
        claim["items"][1]["quantity"] = 14 + n  # different totals
        ids.append(settle(client, auth, claim))
    ex03["hospital"] = {"id": "H0031"}  # at its registered level
    other = settle(client, auth, ex03, "H0031")
    everything = [*ids, other]

    def listing(**params: Any) -> dict[str, Any]:
        response = client.get("/v1/settlements", params=params, headers=auth["reviewer"])
        assert response.status_code == 200, response.text
        return dict(response.json())

    whole = listing()
    assert whole["count"] == 5
    for layer in ("total", "basic", "backstop", "patient_pays", "hospital_bears"):
        fen = 0
        for s in everything:
            text = s["amounts"].get(layer) or s["payments"].get(layer) or s.get(layer)
            fen += round(float(text) * 100)
        assert round(float(whole["totals"][layer]) * 100) == fen, layer
    assert listing(visit_type="inpatient", scheme="resident")["count"] == 5
    assert listing(visit_type="outpatient")["count"] == 0
    assert listing(fund="backstop")["count"] == len([s for s in everything if s["payments"]["backstop"] != "0.00"])
    assert listing(fund="poverty_relief")["count"] == len(
        [s for s in everything if s["charity_by_fund"].get("poverty_relief", "0.00") != "0.00"])
    assert client.get("/v1/settlements", params={"fund": "nope"}, headers=auth["reviewer"]).status_code == 404
    big = max(everything, key=lambda s: float(s["amounts"]["total"]))
    assert [i["settlement_id"] for i in listing(total_min=big["amounts"]["total"])["items"]] == [big["settlement_id"]]
    assert listing(total_max="0.99")["count"] == 0
    assert listing(layer="backstop", layer_min="0.01")["count"] == listing(fund="backstop")["count"]
    assert client.get("/v1/settlements", params={"total_min": "1.234"}, headers=auth["reviewer"]).status_code == 400
    today = dt.datetime.now(app.state.ctx.tz).date()
    assert listing(settled_from=today.isoformat(), settled_to=today.isoformat())["count"] == 5
    assert listing(settled_to=(today - dt.timedelta(days=1)).isoformat())["count"] == 0
    # sort by total, both directions, two per page, by cursor
    for sort, reverse in (("total", False), ("-total", True)):
        seen: list[str] = []
        cursor = None
        while True:
            page = listing(sort=sort, limit=2, **({"cursor": cursor} if cursor else {}))
            assert page["count"] == 5  # the whole filter on every page
            seen += [i["settlement_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = sorted(everything, key=lambda s: (float(s["amounts"]["total"]), s["settlement_id"] if False else 0),
                          reverse=reverse)
        assert [float(x["amounts"]["total"]) for x in expected] == [
            float(next(s for s in everything if s["settlement_id"] == sid)["amounts"]["total"]) for sid in seen]
        assert sorted(seen) == sorted(s["settlement_id"] for s in everything)
    # a discharge range pages through its own (materialized) order: the same pages as without one
    for sort in ("seq", "-total", "discharged"):
        for extra in ({}, {"from": "2000-01-01", "to": "2099-12-31"}):
            pages, cursor = [], None
            while True:
                got = listing(sort=sort, limit=2, **extra, **({"cursor": cursor} if cursor else {}))
                pages.append([i["settlement_id"] for i in got["items"]])
                cursor = got["next_cursor"]
                if cursor is None:
                    break
            if not extra:
                expected_pages = pages
        assert pages == expected_pages, sort
    assert listing(**{"from": "2000-01-01", "to": "2000-12-31"})["items"] == []
    wrong_cursor = listing(sort="total", limit=2)["next_cursor"]
    # any text is a cursor by the document: another sort's is refused by a rule (422, service.openapi)
    assert client.get("/v1/settlements", params={"sort": "-total", "cursor": wrong_cursor},
                      headers=auth["reviewer"]).status_code == 422
    assert client.get("/v1/settlements", params={"sort": "colour"}, headers=auth["reviewer"]).status_code == 400
    assert listing(totals="false").get("count") is None


def test_export_csv_and_xlsx_match_the_json_list(client, auth, app):
    settle_ex01(client, auth, 3)
    run_refresher(app)
    listing = client.get("/v1/settlements", headers=auth["reviewer"]).json()
    response = client.get("/v1/settlements", params={"format": "csv"}, headers=auth["reviewer"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, body, total_row = rows[0], rows[1:-1], rows[-1]
    assert header[:4] == ["结算单号", "医院单据号", "医疗机构编码", "公民身份号码"]
    assert "医疗费总额" in header and "政府兜底保障" in header and "审核状态" in header
    assert [r[0] for r in body] == [i["settlement_id"] for i in listing["items"]]
    total_col = header.index("医疗费总额")
    assert total_row[0].startswith("合计") and total_row[total_col] == listing["totals"]["total"]
    assert body[0][header.index("审核状态")] == "待审核"
    assert "兜底支付" in body[0][header.index("预警")]
    assert body[0][header.index("险种")] == "城乡居民基本医疗保险"

    response = client.get("/v1/settlements", params={"format": "xlsx"}, headers=auth["reviewer"])
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True).active
    cells = list(sheet.iter_rows(values_only=True))
    assert list(cells[0]) == header
    assert [r[0] for r in cells[1:-1]] == [i["settlement_id"] for i in listing["items"]]
    assert round(cells[-1][total_col] * 100) == round(float(listing["totals"]["total"]) * 100)
    bad = client.get("/v1/settlements", params={"format": "pdf"}, headers=auth["reviewer"])
    assert bad.status_code == 400


def test_review_rules_are_readable_by_reviewers_and_admins(client, auth):
    response = client.get("/v1/review-rules", headers=auth["admin"])
    assert response.status_code == 200
    body = response.json()
    assert len(body["rules"]) == 13 and body["source"].endswith("review_rules.yaml")
    assert {r["rule"]: r["threshold"] for r in body["rules"]}["readmission"] == {"days": 15}
    assert client.get("/v1/review-rules", headers=auth["reviewer"]).status_code == 200
    assert client.get("/v1/review-rules", headers=auth["hospital"]).status_code == 403


def test_a_district_scoped_reviewer_sees_only_the_districts_settlements(client, auth, app):
    from contextlib import contextmanager

    from service_helpers import person_id

    from settlement.service.auth.keys import Role
    from settlement.service.auth.service import Principal
    from settlement.service.deps import current_principal

    inside, outside = person_id(11), person_id(12)
    for pid, district in ((inside, "230102"), (outside, "230203")):
        body = {"scheme": "resident", "district": district,
                "categories": [{"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": None}]}
        assert client.put(f"/v1/persons/{pid}", json=body, headers=auth["admin"]).status_code in (200, 201)
    ids = {}
    for pid in (inside, outside):
        claim = copy.deepcopy(EX01)
        claim["claim_id"] = f"D-{pid[-4:]}"
        claim["patient"] = {"person_id": pid}
        ids[pid] = settle(client, auth, claim)["settlement_id"]

    def listed(headers: dict[str, str] | None = None, **params: Any) -> list[str]:
        response = client.get("/v1/settlements", params=params, headers=headers or {})
        assert response.status_code == 200, response.text
        return [i["settlement_id"] for i in response.json()["items"]]

    assert listed(auth["reviewer"], district="2301") == [ids[inside]]
    assert listed(auth["reviewer"], district="230203") == [ids[outside]]
    assert client.get("/v1/settlements", params={"district": "23x"}, headers=auth["reviewer"]).status_code == 400

    @contextmanager
    def scoped(district: str) -> Any:
        app.dependency_overrides[current_principal] = lambda: Principal(
            key_id="scopedkey001", role=Role.REVIEWER, district=district, user="clerk")
        try:
            yield
        finally:
            app.dependency_overrides.pop(current_principal, None)

    with scoped("2301"):
        assert listed() == [ids[inside]]
        assert listed(district="230203") == []  # its own scope and the filter, both
        assert client.get(f"/v1/settlements/{ids[inside]}").status_code == 200
        for path in (f"/v1/settlements/{ids[outside]}", f"/v1/settlements/{ids[outside]}/reviews"):
            assert client.get(path).status_code == 404, path
        refused = client.post(f"/v1/settlements/{ids[outside]}/reviews", json={"decision": "approve"})
        assert refused.status_code == 404
        done = client.post(f"/v1/settlements/{ids[inside]}/reviews", json={"decision": "approve"})
        assert done.status_code == 201 and done.json()["actor"] == "clerk"
        rows = list(csv.reader(io.StringIO(
            client.get("/v1/settlements", params={"format": "csv"}).content.decode("utf-8-sig"))))
        assert [r[0] for r in rows[1:-1]] == [ids[inside]]
        summary = client.get("/v1/settlements").json()
        body = {"filter": {}, "count": summary["count"], "total": summary["totals"]["total"]}
        assert summary["count"] == 1
        assert client.post("/v1/settlements/approvals", json=body).json()["approved"] == 1
    # the service functions the pages call apply the same scope
    from settlement.service.reviews import service as reviews
    from settlement.service.settlements import query

    clerk = Principal(key_id="scopedkey001", role=Role.REVIEWER, district="2301", user="clerk")
    with app.state.ctx.db.read() as session:
        rows_, _cursor = query.page(session, app.state.ctx, clerk, query.SettlementFilter())
        assert [r.settlement_id for r in rows_] == [ids[inside]]
        with pytest.raises(ServiceError) as refused_panel:
            reviews.review_panel(session, clerk, ids[outside])
        assert refused_panel.value.status == 404
        panel = reviews.review_panel(session, clerk, ids[inside])
        assert panel["review_status"] == "approved" and [r["actor"] for r in panel["reviews"]] == ["clerk", "clerk"]


def test_a_fund_limited_insurer_sees_only_its_funds_totals_and_export_columns(client, auth, app):
    from settlement.service.auth.service import create_key

    ex03 = example("EX-03")
    register(client, auth["reviewer"], ex03["patient"]["person_id"], "resident", "extreme_poverty")
    ex03["hospital"] = {"id": "H0031"}
    everything = [*settle_ex01(client, auth, 2), settle(client, auth, ex03, "H0031")]
    with app.state.ctx.db.write() as session:
        keys = {funds: create_key(session, "insurer", funds=[funds]) for funds in ("basic", "poverty_relief")}
        session.commit()

    def fen(text: str | None) -> int:
        return round(float(text or "0") * 100)

    bill = {"total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible"}
    # the basic insurer: the bill and basic, nobody else's layer, share or fund
    headers = {"Authorization": f"Bearer {keys['basic']}"}
    paid = [s for s in everything if fen(s["payments"]["basic"]) > 0]
    listing = client.get("/v1/settlements", headers=headers).json()
    assert listing["count"] == len(paid) > 0
    assert set(listing["totals"]) == bill | {"basic"}
    assert fen(listing["totals"]["basic"]) == sum(fen(s["payments"]["basic"]) for s in paid)
    assert fen(listing["totals"]["total"]) == sum(fen(s["amounts"]["total"]) for s in paid)
    rows = list(csv.reader(io.StringIO(
        client.get("/v1/settlements", params={"format": "csv"}, headers=headers).content.decode("utf-8-sig"))))
    header = rows[0]
    assert "基本医疗保险统筹基金支付" in header and "医疗费总额" in header
    for hidden in ("大病保险支付", "医疗救助基金支付", "慈善救助支付", "政府兜底保障", "个人负担", "医疗机构承担"):
        assert hidden not in header, hidden
    assert rows[-1][header.index("基本医疗保险统筹基金支付")] == listing["totals"]["basic"]

    # one charity fund of two: its own sum (from the ledger), not the charity layer's
    headers = {"Authorization": f"Bearer {keys['poverty_relief']}"}
    paid = [s for s in everything if fen(s["charity_by_fund"].get("poverty_relief")) > 0]
    listing = client.get("/v1/settlements", headers=headers).json()
    assert listing["count"] == len(paid) > 0
    assert set(listing["totals"]) == bill | {"charity:poverty_relief"}
    own = sum(fen(s["charity_by_fund"]["poverty_relief"]) for s in paid)
    assert fen(listing["totals"]["charity:poverty_relief"]) == own
    response = client.get("/v1/settlements", params={"format": "xlsx"}, headers=headers)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True).active
    cells = list(sheet.iter_rows(values_only=True))
    header = list(cells[0])
    column = header.index("慈善救助支付（扶贫专项救助基金）")
    assert "慈善救助支付" not in header and "基本医疗保险统筹基金支付" not in header and "个人负担" not in header
    assert [round(r[column] * 100) for r in cells[1:-1]] == [
        fen(s["charity_by_fund"]["poverty_relief"]) for s in paid]
    assert round(cells[-1][column] * 100) == own
