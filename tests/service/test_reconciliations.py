"""POST /v1/reconciliations against the ledger: kinds, a reversal after the period, files, storage."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import openpyxl
import pytest
from service_helpers import example, register
from sqlalchemy import func, select
from test_statements import Clock, at, settle

from settlement.service.reconciliations.models import ReconciliationItem, ReconciliationRun

EX01 = example("EX-01")


@pytest.fixture
def clock(app: Any, monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(app, monkeypatch)


PERSON = EX01["patient"]["person_id"]


def post(client: Any, headers: Any, data: bytes, name: str = "theirs.csv", **fields: str) -> Any:
    form = {"fund": "basic", "from": "2026-10-01", "to": "2026-10-31", **fields}
    return client.post("/v1/reconciliations", data=form, files={"file": (name, data)}, headers=headers)


def test_kinds_reversal_after_the_period_and_storage(client, auth, clock, app):
    register(client, auth["reviewer"], PERSON)
    a, b, c, d = (settle(client, auth, x) for x in ("A", "B", "C", "D"))
    client.post(f"/v1/settlements/{d['settlement_id']}/reversal", headers=auth["H0002"])  # in October: nets to 0
    clock.now = at("2026-11-02")
    client.post(f"/v1/settlements/{c['settlement_id']}/reversal", headers=auth["H0002"])  # after the period
    basic = {k: v["payments"]["basic"] for k, v in zip("ABCD", (a, b, c, d), strict=True)}
    text = (
        "hospital_id,claim_id,amount\n"
        f"H0002,A,{basic['A']}\n"
        "H0002,B,1.00\n"
        f"H0002,C,{basic['C']}\n"
        f"H0002,A,{basic['A']}\n"
        "H0031,住院-9,5.00\n"
    )
    response = post(client, auth["insurer"], text.encode("gbk"))
    assert response.status_code == 201, response.text
    body = response.json()
    ours = sum(int(basic[k].replace(".", "")) for k in "ABC")
    theirs = 2 * int(basic["A"].replace(".", "")) + 100 + int(basic["C"].replace(".", "")) + 500
    assert body["summary"] == {
        "matched": 2,  # A and C (C's reversal is booked in November)
        "amount_mismatch": 1,
        "only_ours": 0,  # D nets to zero
        "only_theirs": 1,
        "duplicate_theirs": 1,
        "reversed_ours": 1,
        "ours_total": f"{ours // 100}.{ours % 100:02d}",
        "theirs_total": f"{theirs // 100}.{theirs % 100:02d}",
        "difference": f"{(theirs - ours) // 100}.{(theirs - ours) % 100:02d}",
    }
    run = client.get(f"/v1/reconciliations/{body['id']}", headers=auth["admin"]).json()
    assert run["from"] == "2026-10-01" and len(run["input_sha256"]) == 64 and run["ran_by"]
    assert run["summary"] == body["summary"]
    mismatch = client.get(
        f"/v1/reconciliations/{body['id']}/items", params={"kind": "amount_mismatch"}, headers=auth["insurer"]
    ).json()
    assert mismatch == [
        {
            "kind": "amount_mismatch",
            "kind_label": "金额不符",
            "hospital_id": "H0002",
            "claim_id": "B",
            "settlement_id": b["settlement_id"],
            "ours": basic["B"],
            "theirs": "1.00",
            "difference": mismatch[0]["difference"],
            "line": 3,
        }
    ]
    only = client.get(
        f"/v1/reconciliations/{body['id']}/items", params={"kind": "only_theirs"}, headers=auth["insurer"]
    ).json()
    assert only[0]["claim_id"] == "住院-9"
    csv = client.get(f"/v1/reconciliations/{body['id']}/items", params={"format": "csv"}, headers=auth["insurer"])
    assert csv.content.startswith(b"\xef\xbb\xbf") and len(csv.content.decode("utf-8-sig").splitlines()) == 1 + 6 + 1
    xlsx = client.get(f"/v1/reconciliations/{body['id']}/items", params={"format": "xlsx"}, headers=auth["insurer"])
    assert next(openpyxl.load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True))[0] == "对账结果"


def test_xlsx_upload_and_a_bad_file_stores_nothing(client, auth, clock, app):
    register(client, auth["reviewer"], PERSON)
    a = settle(client, auth, "A")
    book = openpyxl.Workbook()
    book.active.append(["hospital_id", "claim_id", "amount"])
    book.active.append(["H0002", "A", float(a["payments"]["basic"])])
    data = io.BytesIO()
    book.save(data)
    good = post(client, auth["admin"], data.getvalue(), "their.xlsx")
    assert good.status_code == 201 and good.json()["summary"]["matched"] == 1
    assert good.json()["summary"]["difference"] == "0.00"
    bad = post(client, auth["admin"], b"hospital_id,claim_id,amount\nH0002,A,1.234\nH0002,,2\n")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_file"
    assert [e["line"] for e in bad.json()["errors"]] == [2, 3]
    with app.state.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ReconciliationRun)) == 1
        assert session.scalar(select(func.count()).select_from(ReconciliationItem)) == 1


def test_fund_checks_and_roles(client, auth, app):
    from settlement.service.auth.service import create_key

    with app.state.ctx.db.write() as session:
        limited = create_key(session, "insurer", funds=["poverty_relief"])
        session.commit()
    text = b"hospital_id,claim_id,amount\n"
    assert post(client, auth["insurer"], text, fund="nope").status_code == 404
    assert post(client, {"Authorization": f"Bearer {limited}"}, text).status_code == 403
    assert post(client, auth["hospital"], text).status_code == 403
    assert post(client, auth["insurer"], text, to="2026-09-01").status_code == 400
    run = post(client, auth["insurer"], text).json()
    assert (
        client.get(f"/v1/reconciliations/{run['id']}", headers={"Authorization": f"Bearer {limited}"}).status_code
        == 404
    )


def test_past_runs_are_listed_to_who_sees_their_fund(client, auth, app):
    from settlement.service.auth.keys import Role
    from settlement.service.auth.service import Principal
    from settlement.service.reconciliations.service import list_runs

    text = b"hospital_id,claim_id,amount\n"
    first = post(client, auth["insurer"], text).json()["id"]
    second = post(client, auth["admin"], text, fund="critical_illness").json()["id"]
    with app.state.ctx.db.read() as session:
        every = list_runs(session, Principal("k", Role.ADMIN))
        basic = list_runs(session, Principal("k", Role.INSURER, funds=frozenset({"basic"})))
    assert {r["id"] for r in every} == {first, second} and [r["id"] for r in basic] == [first]
    assert basic[0]["input_sha256"] == hashlib.sha256(text).hexdigest()
