"""Statements by day and month, their lines in every format, and period closes with their adjustments."""

from __future__ import annotations

import copy
import datetime as dt
import io
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest
from service_helpers import example, register

from settlement.service.settlements.models import LedgerEntry

PERSON = EX01_PERSON = example("EX-01")["patient"]["person_id"]
EX01 = example("EX-01")
TZ = dt.timezone(dt.timedelta(hours=8))


def at(day: str, time: str = "10:00") -> dt.datetime:
    """A moment in Asia/Shanghai (the service's default zone)."""
    return dt.datetime.fromisoformat(f"{day}T{time}:00").replace(tzinfo=TZ)


class Clock:
    def __init__(self, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = at("2026-10-10")
        monkeypatch.setattr(app.state.ctx, "now", lambda: self.now)


@pytest.fixture
def clock(app: Any, monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(app, monkeypatch)


def settle(client: Any, auth: Any, claim_id: str, hospital: str = "H0002") -> dict[str, Any]:
    claim = copy.deepcopy(EX01)
    claim["claim_id"] = claim_id
    claim["hospital"]["id"] = hospital
    response = client.post("/v1/settlements", json=claim, headers=auth[hospital])
    assert response.status_code == 201, response.text
    return dict(response.json())


def fen(text: str) -> int:
    return int(text.replace(".", "").replace("-", "")) * (-1 if text.startswith("-") else 1)


def yuan(value: int) -> str:
    from settlement.money import format_fen

    return format_fen(value)


def get(client: Any, auth: Any, path: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=auth.get("_as", auth["insurer"]))
    assert response.status_code == 200, response.text
    return response.json()


def test_by_day_and_month_with_hospitals_and_totals(client, auth, clock):
    register(client, auth["reviewer"], PERSON)
    clock.now = at("2026-10-30")
    a = settle(client, auth, "A")
    clock.now = at("2026-10-31", "23:59")
    b = settle(client, auth, "B", "H0031")
    clock.now = at("2026-11-01", "00:01")  # the next day and month in Asia/Shanghai (still 31 Oct in UTC)
    c = settle(client, auth, "C")
    client.post(f"/v1/settlements/{a['settlement_id']}/reversal", headers=auth["H0002"])
    basic = {k: fen(v["payments"]["basic"]) for k, v in {"a": a, "b": b, "c": c}.items()}

    months = get(client, auth, "/v1/statements", fund="basic", **{"from": "2026-10-01", "to": "2026-11-30"})
    assert months["time_zone"] == "Asia/Shanghai"
    rows = [(r["period"], r["hospital_id"], r["settlements"], r["reversals"], fen(r["amount"])) for r in months["rows"]]
    assert rows == [
        ("2026-10", "H0002", 1, 0, basic["a"]),
        ("2026-10", "H0031", 1, 0, basic["b"]),
        ("2026-11", "H0002", 1, 1, basic["c"] - basic["a"]),
    ]
    assert months["totals"] == {"settlements": 3, "reversals": 1, "amount": yuan(basic["b"] + basic["c"])}
    days = get(
        client,
        auth,
        "/v1/statements",
        fund="basic",
        by="day",
        hospital_id="H0002",
        **{"from": "2026-10-31", "to": "2026-11-01"},
    )
    assert [(r["period"], r["settlements"], r["reversals"]) for r in days["rows"]] == [("2026-11-01", 1, 1)]


def test_lines_pages_and_formats(client, auth, clock):
    register(client, auth["reviewer"], PERSON)
    settled = [settle(client, auth, f"L{i}") for i in range(5)]
    clock.now = at("2026-10-11")
    client.post(f"/v1/settlements/{settled[1]['settlement_id']}/reversal", headers=auth["H0002"])
    span = {"from": "2026-10-01", "to": "2026-10-31"}
    page = get(client, auth, "/v1/statements/lines", fund="basic", limit=4, **span)
    assert len(page["items"]) == 4 and page["next_cursor"]
    rest = get(client, auth, "/v1/statements/lines", fund="basic", cursor=page["next_cursor"], **span)
    items = page["items"] + rest["items"]
    assert rest["next_cursor"] is None and len(items) == 6
    assert [i["entry_id"] for i in items] == sorted(i["entry_id"] for i in items)
    assert [i["claim_id"] for i in items] == ["L0", "L1", "L2", "L3", "L4", "L1"]
    assert [i["kind"] for i in items][-1] == "reversed"
    assert items[-1]["amount"] == "-" + settled[1]["payments"]["basic"]
    assert items[0]["person_id"] == PERSON and items[0]["settlement_id"] == settled[0]["settlement_id"]
    total = sum(fen(i["amount"]) for i in items)

    headers = auth["insurer"]
    csv = client.get("/v1/statements/lines", params={"fund": "basic", **span, "format": "csv"}, headers=headers)
    assert csv.content.startswith(b"\xef\xbb\xbf") and "attachment" in csv.headers["content-disposition"]
    text = csv.content.decode("utf-8-sig").splitlines()
    assert text[0].startswith("分录号,期间,结算ID") and len(text) == 1 + 6 + 1  # header, lines, 合计
    assert text[-1].startswith("合计（6）") and text[-1].endswith(yuan(total))
    xlsx = client.get(
        "/v1/statements/lines",
        params={"fund": "basic", **span},
        headers={**headers, "Accept": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    )
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[1][4] == "L0" and round(values[-1][-1] * 100) == total
    parquet = client.get("/v1/statements/lines", params={"fund": "basic", **span, "format": "parquet"}, headers=headers)
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 6 and str(table.schema.field("amount").type) == "decimal128(18, 2)"
    assert sum(int(v * 100) for v in table.column("amount").to_pylist()) == total
    monthly = client.get("/v1/statements", params={"fund": "basic", **span, "format": "parquet"}, headers=headers)
    assert pq.read_table(io.BytesIO(monthly.content)).column("period").to_pylist() == ["2026-10"]


def test_fund_parameter_checks(client, auth, app):
    from settlement.service.auth.service import create_key

    with app.state.ctx.db.write() as session:
        limited = create_key(session, "insurer", funds=["poverty_relief"])
        session.commit()
    span = {"from": "2026-10-01", "to": "2026-10-31"}
    unknown = client.get("/v1/statements", params={"fund": "nope", **span}, headers=auth["insurer"])
    assert unknown.status_code == 404 and "poverty_relief" in unknown.json()["detail"]
    other = client.get(
        "/v1/statements/lines", params={"fund": "basic", **span}, headers={"Authorization": f"Bearer {limited}"}
    )
    assert other.status_code == 403
    backwards = client.get(
        "/v1/statements", params={"fund": "basic", "from": "2026-10-02", "to": "2026-10-01"}, headers=auth["insurer"]
    )
    assert backwards.status_code == 400
    bad = client.get("/v1/statements", params={"fund": "basic", **span, "format": "pdf"}, headers=auth["insurer"])
    assert bad.status_code == 400


def test_close_freezes_the_month_and_reversals_after_it_are_adjustments(client, auth, clock, app):
    register(client, auth["reviewer"], PERSON)
    oct_a = settle(client, auth, "O1")
    oct_b = settle(client, auth, "O2")
    admin = auth["admin"]
    # October has not ended
    early = client.post("/v1/statements/basic/2026-10/close", headers=admin)
    assert early.status_code == 409 and early.json()["code"] == "period_open"
    clock.now = at("2026-11-03")
    nov = settle(client, auth, "N1")
    closed = client.post("/v1/statements/basic/2026-10/close", headers=admin)
    assert closed.status_code == 201, closed.text
    frozen = closed.json()
    assert frozen["settlements"] == 2 and frozen["amount"] == yuan(
        fen(oct_a["payments"]["basic"]) + fen(oct_b["payments"]["basic"])
    )
    assert frozen["closed_by"] and len(frozen["lines_sha256"]) == 64 and frozen["lines"] == 2
    again = client.post("/v1/statements/basic/2026-10/close", headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "period_closed"
    skip = client.post("/v1/statements/basic/2026-12/close", headers=admin)
    assert skip.status_code == 409  # December has not ended (and November comes first)

    # a reversal of an October settlement, made in November: an adjustment row in November naming October
    clock.now = at("2026-11-20")
    client.post(f"/v1/settlements/{oct_a['settlement_id']}/reversal", headers=auth["H0002"])
    span = {"from": "2026-10-01", "to": "2026-11-30"}
    statement = get(client, auth, "/v1/statements", fund="basic", **span)
    assert statement["closed"] == ["2026-10"]
    rows = [(r["period"], r["adjusts"], r["settlements"], r["reversals"], fen(r["amount"])) for r in statement["rows"]]
    assert rows == [
        ("2026-10", None, 2, 0, frozen_amount := fen(frozen["amount"])),
        ("2026-11", None, 1, 0, fen(nov["payments"]["basic"])),
        ("2026-11", "2026-10", 0, 1, -fen(oct_a["payments"]["basic"])),
    ]
    # a late entry: stamped in October, committed after the close (written here as the race would leave it)
    with app.state.ctx.db.write() as session:
        # on N1's settlement (one settled entry per settlement and fund: O1's is reversed)
        entry = session.query(LedgerEntry).filter_by(fund="patient", business_date=dt.date(2026, 11, 3)).one()
        late = LedgerEntry(
            settlement_seq=entry.settlement_seq,
            event_seq=entry.event_seq,
            kind="settled",
            hospital_id="H0002",
            layer="basic",
            fund="basic",
            amount_fen=123,
            business_date=dt.date(2026, 10, 31),
            at=at("2026-10-31", "23:59"),
        )
        session.add(late)
        session.commit()
    after = get(client, auth, "/v1/statements", fund="basic", **span)
    october = [r for r in after["rows"] if r["period"] == "2026-10"]
    assert [(r["settlements"], fen(r["amount"])) for r in october] == [(2, frozen_amount)]  # never changes
    adjustments = [r for r in after["rows"] if r["period"] == "2026-11" and r["adjusts"] == "2026-10"]
    assert [(r["settlements"], r["reversals"], fen(r["amount"])) for r in adjustments] == [
        (1, 1, 123 - fen(oct_a["payments"]["basic"]))
    ]
    lines = get(client, auth, "/v1/statements/lines", fund="basic", **{"from": "2026-11-01", "to": "2026-11-30"})
    assert [(i["kind"], i["adjusts"]) for i in lines["items"]] == [
        ("settled", None),
        ("reversed", "2026-10"),
        ("settled", "2026-10"),
    ]
    # the closed month's lines hash the same as at the close
    from settlement.service.statements.service import Closes, _lines, line_digest

    with app.state.ctx.db.read() as session:
        closes = Closes.read(session, "basic")
        digest, n = line_digest(_lines(session, closes, dt.date(2026, 10, 1), dt.date(2026, 10, 31)))
    assert (digest, n) == (frozen["lines_sha256"], 2)
    # November closes next and takes the late entry with it
    clock.now = at("2026-12-01", "08:00")
    november = client.post("/v1/statements/basic/2026-11/close", headers=admin)
    assert november.status_code == 201, november.text
    assert fen(november.json()["amount"]) == fen(nov["payments"]["basic"]) - fen(oct_a["payments"]["basic"]) + 123
    closes = client.get("/v1/statements/basic/closes", headers=auth["insurer"]).json()
    assert [c["period"] for c in closes] == ["2026-10", "2026-11"]


def test_close_roles(client, auth, clock, app):
    from settlement.service.auth.service import create_key

    with app.state.ctx.db.write() as session:
        basic_insurer = create_key(session, "insurer", funds=["basic"])
        session.commit()
    clock.now = at("2026-11-03")
    other = client.post(
        "/v1/statements/poverty_relief/2026-10/close", headers={"Authorization": f"Bearer {basic_insurer}"}
    )
    assert other.status_code == 403
    unlimited = client.post("/v1/statements/basic/2026-10/close", headers=auth["insurer"])
    assert unlimited.status_code == 403
    own = client.post("/v1/statements/basic/2026-10/close", headers={"Authorization": f"Bearer {basic_insurer}"})
    assert own.status_code == 201 and own.json()["settlements"] == 0
    assert client.post("/v1/statements/basic/2026-13/close", headers=auth["admin"]).status_code == 400
    assert client.post("/v1/statements/basic/2026-10/close", headers=auth["hospital"]).status_code == 403


def test_closing_while_settling_loses_and_doubles_nothing(client, auth, app, monkeypatch):
    """Settlements stamped on 31 October commit while October closes: each entry is in October (committed
    before the close's watermark) or an adjustment of November, once; October's lines still hash the same."""
    import threading

    from settlement.service.auth.keys import Role
    from settlement.service.auth.service import Principal
    from settlement.service.statements.service import Closes, _lines, close_period, line_digest

    register(client, auth["reviewer"], PERSON)
    clock = {"now": at("2026-10-31", "23:59")}
    monkeypatch.setattr(app.state.ctx, "now", lambda: clock["now"])
    for i in range(3):
        settle(client, auth, f"before-{i}")
    errors: list[str] = []

    def settler(n: int) -> None:
        for i in range(8):
            try:
                settle(client, auth, f"race-{n}-{i}")
            except AssertionError as exc:  # pragma: no cover - reported below
                errors.append(str(exc))

    def closer() -> None:  # the service function itself, on a clock of its own (2 November)
        ctx = copy.copy(app.state.ctx)
        ctx.now = lambda: at("2026-11-02")
        with ctx.db.write() as session:
            close_period(session, ctx, Principal("test", Role.ADMIN), "basic", "2026-10")

    threads = [threading.Thread(target=settler, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    closing = threading.Thread(target=closer)
    closing.start()
    for t in [*threads, closing]:
        t.join()
    assert errors == []
    clock["now"] = at("2026-11-10")
    closed = client.get("/v1/statements/basic/closes", headers=auth["insurer"]).json()[0]
    span = {"from": "2026-10-01", "to": "2026-11-30"}
    rows = get(client, auth, "/v1/statements", fund="basic", **span)["rows"]
    october = [r for r in rows if r["period"] == "2026-10"]
    late = [r for r in rows if r["period"] == "2026-11"]
    assert all(r["adjusts"] == "2026-10" for r in late)
    assert sum(r["settlements"] for r in october) == closed["settlements"]
    assert sum(r["settlements"] for r in october + late) == 3 + 3 * 8
    with app.state.ctx.db.read() as session:
        entries = session.query(LedgerEntry).filter_by(fund="basic").count()
        closes = Closes.read(session, "basic")
        digest, n = line_digest(_lines(session, closes, dt.date(2026, 10, 1), dt.date(2026, 10, 31)))
    assert entries == 3 + 3 * 8 and (digest, n) == (closed["lines_sha256"], closed["lines"])
