"""Emergency relief (疾病应急救助) at the counter: the unidentified patient and the patient who cannot pay.

Runs on the service's test database (PostgreSQL when it is there: the counter sends these claims
the locked way; SQLite otherwise: the ORM way).
"""

from __future__ import annotations

import copy
from typing import Any

from service_helpers import example, register
from sqlalchemy import select

from settlement.service.settlements.models import LedgerEntry, Settlement

EX15 = example("EX-15")  # unidentified, level 3, emergency: the fund pays 7019.64, the hospital bears the rest
EX17 = example("EX-17")  # unable to pay, employee, level 2: basic, then the fund
POOL = "/v1/funds/emergency_relief/pools/2019"


def _pool(client: Any, auth: dict[str, dict[str, str]]) -> dict[str, Any]:
    response = client.get(POOL, headers=auth["reviewer"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ledger(app: Any, settlement_id: str) -> list[tuple[str, str, str, int]]:
    with app.state.ctx.db.read() as session:
        seq = session.scalar(select(Settlement.seq).where(Settlement.settlement_id == settlement_id))
        rows = session.execute(
            select(LedgerEntry.kind, LedgerEntry.layer, LedgerEntry.fund, LedgerEntry.amount_fen)
            .where(LedgerEntry.settlement_seq == seq)
            .order_by(LedgerEntry.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_unidentified_patient_settles_without_a_registry_entry(client, auth, app):
    assert _pool(client, auth)["used"] == "0.00"
    response = client.post("/v1/settlements", json=EX15, headers=auth["H0031"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["person_id"] is None and body["scheme"] is None and body["category"] is None
    assert body["temporary_id"] == "T2019-0042" and body["emergency"] is True and body["unable_to_pay"] is False
    assert body["payments"]["emergency_relief"] == "7019.64"
    assert body["patient_pays"] == "0.00" and body["hospital_bears"] == "1119.96"
    assert [s["layer"] for s in body["trace"]].count("emergency_relief") == 1
    assert any("unidentified" in s["text"] for s in body["trace"])
    assert body["accumulators_after"]["person_id"] is None
    assert body["accumulators_after"]["pool_used"] == {"emergency_relief": "7019.64"}
    pool = _pool(client, auth)
    assert (pool["pool"], pool["used"], pool["remaining"]) == ("1200000.00", "7019.64", "1192980.36")
    assert ("settled", "emergency_relief", "emergency_relief", 701964) in _ledger(app, body["settlement_id"])
    assert ("settled", "hospital", "hospital", 111996) in _ledger(app, body["settlement_id"])

    # idempotent on (hospital id, claim_id), like any other claim; another claim under the id is a 409
    again = client.post("/v1/settlements", json=EX15, headers=auth["H0031"])
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == body
    other = copy.deepcopy(EX15)
    other["patient"]["temporary_id"] = "T2019-9999"
    assert client.post("/v1/settlements", json=other, headers=auth["H0031"]).status_code == 409
    assert _pool(client, auth)["used"] == "7019.64"

    read = client.get(f"/v1/settlements/{body['settlement_id']}", headers=auth["reviewer"])
    assert read.status_code == 200 and {k: v for k, v in read.json().items() if k in body} == body

    # a reversal gives the pool back and negates the ledger
    reversed_ = client.post(f"/v1/settlements/{body['settlement_id']}/reversal", json={}, headers=auth["H0031"])
    assert reversed_.status_code in (200, 201), reversed_.text
    assert reversed_.json()["status"] == "reversed"
    assert _pool(client, auth)["used"] == "0.00"
    assert ("reversed", "emergency_relief", "emergency_relief", -701964) in _ledger(app, body["settlement_id"])


def test_unable_to_pay_is_stored_and_draws_on_the_pool(client, auth):
    register(client, auth["reviewer"], EX17["patient"]["person_id"], "employee", "none", valid_from="2019-01-01")
    preview = client.post("/v1/settlements/preview", json=EX17, headers=auth["hospital"])
    assert preview.status_code == 200, preview.text
    assert preview.json()["payments"]["emergency_relief"] == "1273.07"
    assert _pool(client, auth)["used"] == "0.00"  # a preview stores nothing
    response = client.post("/v1/settlements", json=EX17, headers=auth["hospital"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["unable_to_pay"] is True and body["emergency"] is True and body["temporary_id"] is None
    assert body["payments"]["basic"] == "1170.08" and body["payments"]["emergency_relief"] == "1273.07"
    assert body["patient_pays"] == "141.45"
    assert _pool(client, auth)["used"] == "1273.07"
    listed = client.get("/v1/settlements", headers=auth["reviewer"]).json()["items"]
    assert [(i["claim_id"], i["unable_to_pay"]) for i in listed] == [("EX-17", True)]


def test_without_the_declarations_the_fund_pays_nothing(client, auth):
    register(client, auth["reviewer"], EX17["patient"]["person_id"], "employee", "none", valid_from="2019-01-01")
    claim = copy.deepcopy(EX17)
    claim["visit"]["emergency"] = False
    response = client.post("/v1/settlements", json=claim, headers=auth["hospital"])
    assert response.status_code == 201, response.text
    assert response.json()["payments"]["emergency_relief"] == "0.00"
    assert response.json()["accumulators_after"]["pool_used"] == {}
    assert _pool(client, auth)["used"] == "0.00"


def test_unidentified_claims_are_checked(client, auth):
    bad = copy.deepcopy(EX15)
    bad["visit"]["emergency"] = False
    response = client.post("/v1/settlements", json=bad, headers=auth["H0031"])
    assert response.status_code == 422 or response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_claim"
    assert "must be an emergency" in response.json()["detail"]


def test_emergency_relief_is_a_known_fund(app):
    from settlement.service.funds.service import fund_ids

    known = fund_ids(app.state.ctx)
    assert known.index("emergency_relief") == known.index("backstop") - 1  # after the charity funds


def _signed_in_reviewer(app: Any) -> Any:
    """A TestClient signed in as a staff reviewer (the pages' sign-in, not an API key)."""
    import re
    import warnings

    from settlement.service.accounts.service import create_user

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    with app.state.ctx.db.write() as session:
        create_user(session, "clerk", "reviewer", "correct horse battery")
        session.commit()
    web = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)  # type: ignore[union-attr]
    signed = web.post("/login", data={"username": "clerk", "password": "correct horse battery", "csrf_token": token,
                                      "next": ""}, follow_redirects=False)
    assert signed.status_code == 303, signed.text
    return web


def test_the_pages_show_what_the_emergency_relief_fund_paid(client, auth, app):
    import csv
    import io
    import re

    register(client, auth["reviewer"], EX17["patient"]["person_id"], "employee", "none", valid_from="2019-01-01")
    body = client.post("/v1/settlements", json=EX17, headers=auth["hospital"]).json()
    assert body["payments"]["emergency_relief"] == "1273.07"
    web = _signed_in_reviewer(app)

    # the settlement: the payments table and the waterfall, whose steps take the total down to zero
    page = web.get(f"/review/settlements/{body['settlement_id']}").text
    cell = re.search(r'data-key="emergency_relief">([^<]*)<', page)
    assert cell is not None and cell.group(1) == "¥1,273.07"
    assert "疾病应急救助" in page
    chart = page[page.index('id="waterfall"'):]
    chart = chart[: chart.index("</figure>")]
    labels = re.findall(r">(¥[0-9,]+\.[0-9]{2})<", chart)
    assert labels == ["¥2,584.60", "¥1,170.08", "¥1,273.07", "¥141.45"]  # total, basic, the fund, the patient

    def fen(label: str) -> int:
        return int(label[1:].replace(",", "").replace(".", ""))

    assert fen(labels[0]) == sum(fen(label) for label in labels[1:])
    assert fen(labels[0]) == round(float(body["amounts"]["total"]) * 100)

    # the queue: the fund's column and its total over the filter
    queue = web.get("/review/settlements").text
    total = re.search(r'<td class="num" data-key="emergency_relief">([^<]*)<', queue)
    assert total is not None and total.group(1) == "¥1,273.07"

    # the export: its Chinese header after the charity column, the amount as a number
    exported = web.get("/review/settlements/export.csv")
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    header = rows[0]
    assert header.index("疾病应急救助基金支付") == header.index("慈善救助支付") + 1
    assert rows[1][header.index("疾病应急救助基金支付")] == "1273.07"

    # the dashboard: the layer in the year's totals, and the fund's pool beside the charity pools
    dashboard = web.get("/review/dashboard").text
    assert re.search(r"疾病应急救助 <b>¥1,273.07</b>", dashboard)
    pools = dashboard[dashboard.index('id="pools"'):]
    assert "疾病应急救助基金" in pools[: pools.index("</table>")]
