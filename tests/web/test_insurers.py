"""The insurer pages in a browser: the month chart against the JSON statement, a GBK reconciliation file with a
mismatch and a duplicate against the API's summary, the differences as .xlsx read back, a bad file that shows
every defect and stores nothing, a month close with its SHA-256 as the API has it, and who may open what."""

from __future__ import annotations

import io
import re
import secrets
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

from .conftest import Server, screenshot, sign_in

FUND = "basic"


def _read(path: Any) -> io.BytesIO:
    with open(path, "rb") as handle:  # a temporary file of Playwright's, without an extension
        return io.BytesIO(handle.read())


def yuan(text: str) -> Decimal:
    """¥1,234.56 (or -¥0.05) as a Decimal."""
    found = re.fullmatch(r"(-?)¥([\d,]+\.\d\d)", text.strip())
    assert found, text
    return Decimal(found[1] + found[2].replace(",", ""))


@pytest.fixture(scope="module")
def insurer(server: Server) -> tuple[str, str]:
    """An insurer account limited to the basic fund: (username, password)."""
    name, password = f"ins-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    done = server.cli("users", "create", "--role", "insurer", "--name", name, "--fund", FUND, stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    return name, password


@pytest.fixture
def ins_page(context: Any, server: Server, insurer: tuple[str, str]) -> Any:
    p = context.new_page()
    sign_in(p, server, *insurer)
    p.wait_for_url(re.compile(r".*/insurers/statements.*"))
    return p


def _range(page: Any) -> dict[str, str]:
    return {"fund": FUND, "from": page.locator("input[name=from]").input_value(),
            "to": page.locator("input[name=to]").input_value()}


def test_the_month_chart_says_what_the_json_statement_says(ins_page: Any, server: Server) -> None:
    page = ins_page
    params = _range(page)
    with server.api("insurer") as api:
        statement = api.get("/v1/statements", params={**params, "by": "month"}).json()
    months: dict[str, dict[str, Any]] = defaultdict(lambda: {"settlements": 0, "reversals": 0, "amount": Decimal(0)})
    for row in statement["rows"]:
        m = months[row["period"]]
        m["settlements"] += row["settlements"]
        m["reversals"] += row["reversals"]
        m["amount"] += Decimal(row["amount"])
    assert months and statement["totals"]["reversals"] >= 1  # the demo reversed one settlement
    labels = [yuan(t) for t in page.locator("#month-amount-chart svg text").all_text_contents() if "¥" in t]
    assert sorted(labels) == sorted(m["amount"] for m in months.values())
    for period, m in months.items():
        cells = page.locator(f"#months tr[data-period='{period}'] td").all_inner_texts()
        assert (int(cells[1]), int(cells[2]), yuan(cells[3])) == (m["settlements"], m["reversals"], m["amount"])
    shown = Counter(t for t in page.locator("#month-count-chart svg text").all_text_contents())  # labels, ticks
    expected = Counter(str(m[k]) for m in months.values() for k in ("settlements", "reversals"))
    assert not expected - shown
    assert yuan(page.locator("#statement-totals [data-key=amount]").inner_text()) == Decimal(
        statement["totals"]["amount"])
    assert page.locator("h1").inner_text() == "基本医保统筹对账单"  # Chinese by default
    screenshot(page, "insurer-statements")
    # the statement's download is the API's file
    with page.expect_download() as download:
        page.click("#download-statement-xlsx")
    book = openpyxl.load_workbook(_read(download.value.path()), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert Decimal(str(rows[-1][rows[0].index("金额")])).quantize(Decimal("0.01")) == Decimal(
        statement["totals"]["amount"])
    # English on request
    page.click("button[name=language][value=en]")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Statements of Basic insurance"
    page.click("button[name=language][value=zh_CN]")
    page.wait_for_load_state()


def _their_file(server: Server, params: dict[str, str]) -> tuple[str, str, str]:
    """Their CSV from our ledger's lines: one amount changed, one line twice and a claim of theirs only
    (with a Chinese id, so the file is GBK for real). (text, the mismatched claim, the duplicated claim)."""
    with server.api("insurer") as api:
        lines = api.get("/v1/statements/lines", params={**params, "limit": 1000}).json()["items"]
    net: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        net[(line["hospital_id"], line["claim_id"])] += Decimal(line["amount"])
    ours = [(h, c, a) for (h, c), a in net.items() if a != 0]
    assert len(ours) >= 3
    rows = [f"{h},{c},{a}" for h, c, a in ours]
    (h0, c0, a0), (h1, c1, a1) = ours[0], ours[1]
    rows[0] = f"{h0},{c0},{a0 + Decimal('1.00')}"
    rows.append(f"{h1},{c1},{a1}")
    rows.append("H0001,住院-对方独有,12.30")
    return "hospital_id,claim_id,amount\r\n" + "\r\n".join(rows) + "\r\n", c0, c1


def test_a_gbk_file_reconciled_on_the_page_agrees_with_the_api(ins_page: Any, server: Server, tmp_path: Any) -> None:
    page = ins_page
    params = _range(page)
    text, mismatched, duplicated = _their_file(server, params)
    path = tmp_path / "对账-基本医保.csv"
    path.write_bytes(text.encode("gbk"))
    page.goto(f"{server.base}/insurers/reconciliations")
    before = page.locator("#runs tbody tr").count()
    page.select_option("#reconcile-form select[name=fund]", FUND)
    page.fill("#reconcile-form input[name=from]", params["from"])
    page.fill("#reconcile-form input[name=to]", params["to"])
    page.set_input_files("#reconcile-form input[type=file]", str(path))
    page.click("#reconcile-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/insurers/reconciliations/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[-1]
    with server.api("insurer") as api:
        created = api.post("/v1/reconciliations", data=params,
                           files={"file": (path.name, path.read_bytes(), "text/csv")})
        assert created.status_code == 201, created.text
        stored = api.get(f"/v1/reconciliations/{run_id}").json()
    summary = created.json()["summary"]
    assert stored["summary"] == summary
    assert (summary["amount_mismatch"], summary["duplicate_theirs"], summary["only_theirs"]) == (1, 1, 1)
    shown = {row.get_attribute("data-key"): row.locator("td").inner_text()
             for row in page.locator("#summary tr").all()}
    for key in ("matched", "amount_mismatch", "only_ours", "only_theirs", "duplicate_theirs", "reversed_ours"):
        assert int(shown[key]) == summary[key], key
    for key in ("ours_total", "theirs_total", "difference"):
        assert yuan(shown[key]) == Decimal(summary[key]), key
    assert page.locator("#run-sha256").inner_text() == stored["input_sha256"]
    assert mismatched in page.locator("#kind-amount_mismatch").inner_text()
    assert "住院-对方独有" in page.locator("#kind-only_theirs").inner_text()
    screenshot(page, "insurer-reconciliation-run")
    # the differences as .xlsx, read back
    with page.expect_download() as download:
        page.click("#download-differences-xlsx")
    sheet = openpyxl.load_workbook(_read(download.value.path()), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:-1]
    kinds = [r[header.index("结果代码")] for r in body]
    for kind in ("matched", "amount_mismatch", "only_ours", "only_theirs", "duplicate_theirs", "reversed_ours"):
        assert kinds.count(kind) == summary[kind], kind
    mismatch = next(r for r in body if r[header.index("结果代码")] == "amount_mismatch")
    assert mismatch[header.index("结算单号")] == mismatched
    assert Decimal(str(mismatch[header.index("差额")])).quantize(Decimal("0.01")) == Decimal("1.00")
    duplicate = next(r for r in body if r[header.index("结果代码")] == "duplicate_theirs")
    assert duplicate[header.index("结算单号")] == duplicated
    # the run is listed with who ran it and the file's SHA-256
    page.goto(f"{server.base}/insurers/reconciliations")
    assert page.locator("#runs tbody tr").count() == before + 2  # the page's run and the API's
    assert stored["input_sha256"] in page.locator("#runs").inner_text()
    screenshot(page, "insurer-reconciliation")


def test_a_bad_file_shows_every_defect_and_stores_nothing(ins_page: Any, server: Server, tmp_path: Any) -> None:
    page = ins_page
    params = _range(page)
    path = tmp_path / "bad.csv"
    path.write_bytes("hospital_id,claim_id,amount\nH0001,A,1.234\nH0001,,5\nH0001,C\n".encode("gbk"))
    page.goto(f"{server.base}/insurers/reconciliations")
    before = page.locator("#runs tbody tr").count()
    page.fill("#reconcile-form input[name=from]", params["from"])
    page.fill("#reconcile-form input[name=to]", params["to"])
    page.set_input_files("#reconcile-form input[type=file]", str(path))
    with page.expect_response(re.compile(r".*/insurers/reconciliations$")) as answer:
        page.click("#reconcile-form button[type=submit]")
    assert answer.value.status == 422
    defects = [d.split("\t") for d in page.locator("#reconcile-defects tbody tr").all_inner_texts()]
    assert [d[0] for d in defects] == ["2", "3", "4"]
    # on the Chinese page, in Chinese (the file's column names as the file has them); the API in English
    assert [d[1] for d in defects] == ["amount（金额）：'1.234' 不是以元为单位、最多两位小数的金额",
                                       "claim_id：为空", "有 2 个字段，表头有 3 列"]
    assert page.locator("#reconcile-message").inner_text() == "bad.csv：3 处错误，未保存任何内容"
    assert page.locator("#runs tbody tr").count() == before
    with server.api("insurer") as api:
        refused = api.post("/v1/reconciliations", data=params,
                           files={"file": (path.name, path.read_bytes(), "text/csv")})
    assert refused.status_code == 422
    assert [e["message"] for e in refused.json()["errors"]] == [
        "amount: not an amount in yuan with at most two decimals: '1.234'", "claim_id: empty",
        "2 fields, the header has 3"]
    # a file that is no table, and a period that ends before it starts: said in Chinese too
    path.write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    page.set_input_files("#reconcile-form input[type=file]", str(path))
    page.click("#reconcile-form button[type=submit]")
    assert page.locator("#reconcile-defects tbody tr").all_inner_texts() == [
        "–\t这是旧版 Excel .xls 文件：请另存为 .xlsx（Excel 2007 或更高版本）或 CSV"]
    page.fill("#reconcile-form input[name=from]", params["to"])
    page.fill("#reconcile-form input[name=to]", params["from"])
    page.set_input_files("#reconcile-form input[type=file]", str(path))
    with page.expect_response(re.compile(r".*/insurers/reconciliations$")) as answer:
        page.click("#reconcile-form button[type=submit]")
    assert answer.value.status == 400
    assert page.locator("#reconcile-message").inner_text() == "期间的结束日期（至）早于开始日期（自）。"
    assert page.locator("#runs tbody tr").count() == before


def test_close_a_month_and_see_its_sha256(ins_page: Any, server: Server) -> None:
    page = ins_page
    period = page.locator("#close-form input[name=period]").input_value()
    assert re.fullmatch(r"\d{4}-\d\d", period)
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#close-confirm")
    screenshot(page, "insurer-close")
    page.click("#close-month")
    page.wait_for_selector("#closed-notice")
    with server.api("insurer") as api:
        closes = api.get(f"/v1/statements/{FUND}/closes").json()
    close = next(c for c in closes if c["period"] == period)
    row = page.locator(f"#close-list tr[data-period='{period}']").inner_text()
    assert close["lines_sha256"] in row and close["closed_by"] in row
    # the same month again: refused, the close stands
    page.goto(f"{server.base}/insurers/statements/close?fund={FUND}&period={period}")
    with page.expect_response(re.compile(r".*/insurers/statements/close$")) as answer:
        page.click("#close-month")
    assert answer.value.status == 409


def test_who_may_open_which_pages(context: Any, server: Server, insurer: tuple[str, str]) -> None:
    page = context.new_page()
    sign_in(page, server, *insurer)
    page.wait_for_url(re.compile(r".*/insurers/statements.*"))
    assert [a.inner_text() for a in page.locator("nav.main a").all()][:2] == ["对账单", "对账"]
    for path in ("/review/settlements", "/review/persons", "/review/dashboard"):
        assert page.goto(f"{server.base}{path}").status == 403, path
    assert page.goto(f"{server.base}/insurers/statements?fund=medical_assistance").status == 403
    assert page.goto(f"{server.base}/insurers/statements?fund=nope").status == 404
    reviewer = context.browser.new_context()
    try:
        other = reviewer.new_page()
        sign_in(other, server)
        other.wait_for_url(re.compile(r".*/review/settlements.*"))
        assert other.goto(f"{server.base}/insurers/statements").status == 403
        assert other.goto(f"{server.base}/insurers/reconciliations").status == 403
    finally:
        reviewer.close()
