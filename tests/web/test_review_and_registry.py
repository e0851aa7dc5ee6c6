"""The review workflow and the registry in a browser: approve with a note and see it recorded, export the queue
as .xlsx and compare it with the JSON list, an import's dry run that shows every problem and writes nothing,
and a district-scoped reviewer who cannot open another district's person or settlement."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import openpyxl

from .conftest import Server, import_dry_run, screenshot, sign_in


def test_approve_with_a_note_and_see_the_record(page: Any, server: Server) -> None:
    with server.api("reviewer") as api:
        item = api.get("/v1/settlements", params={"review_status": "pending", "status": "settled"}).json()["items"][0]
    page.goto(f"{server.base}/review/settlements/{item['settlement_id']}")
    assert page.locator("#review-status").inner_text() == "待审核"
    page.fill("#review textarea[name=note]", "费用明细核对无误")
    page.click("#review button[value=approve]")
    page.wait_for_load_state()
    assert page.locator("#review-status").inner_text() == "审核通过"
    record = page.locator("#reviews tbody tr").first.inner_text()
    assert "费用明细核对无误" in record and "reviewer" in record
    with server.api("reviewer") as api:  # the same record through the API
        records = api.get(f"/v1/settlements/{item['settlement_id']}/reviews").json()
    assert [(r["decision"], r["note"], r["actor"]) for r in records] == [("approve", "费用明细核对无误", "reviewer")]


def test_a_query_without_a_note_is_refused(page: Any, server: Server) -> None:
    with server.api("reviewer") as api:
        item = api.get("/v1/settlements", params={"review_status": "pending", "status": "settled"}).json()["items"][0]
    page.goto(f"{server.base}/review/settlements/{item['settlement_id']}")
    with page.expect_response(re.compile(r".*/reviews$")) as answer:
        page.click("#review button[value=query]")
    assert answer.value.status == 422
    # the settlement's page again, the message beside the note field, not an error page
    assert page.locator("#review-status").inner_text() == "待审核"
    assert page.locator("#note-problem").inner_text() == "提出疑问或追回须填写审核意见，说明原因。"
    assert page.locator("#review textarea[name=note]").get_attribute("aria-invalid") == "true"
    assert page.locator("#waterfall svg").count() == 1
    page.fill("#review textarea[name=note]", "   ")  # only spaces: still no note, and what was typed stays
    with page.expect_response(re.compile(r".*/reviews$")) as answer:
        page.click("#review button[value=recover]")
    assert answer.value.status == 422
    assert page.locator("#review textarea[name=note]").input_value() == "   "
    assert page.locator("#note-problem").is_visible()
    with server.api("reviewer") as api:
        assert api.get(f"/v1/settlements/{item['settlement_id']}/reviews").json() == []
    page.fill("#review textarea[name=note]", "请说明住院天数")
    page.click("#review button[value=query]")
    page.wait_for_load_state()
    assert page.locator("#review-status").inner_text() == "存疑（需医院说明）"
    assert page.locator("#note-problem").count() == 0


def test_export_xlsx_has_the_rows_and_totals_of_the_json_list(page: Any, server: Server) -> None:
    page.goto(f"{server.base}/review/settlements?category=registered_poor&sort=-total")
    with page.expect_download() as download:
        page.click("#export-xlsx")
    data = open(download.value.path(), "rb").read()  # noqa: SIM115 - a temporary file of Playwright's
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header, body, last = rows[0], rows[1:-1], rows[-1]
    with server.api("reviewer") as api:
        listed = api.get("/v1/settlements", params={"category": "registered_poor", "sort": "-total",
                                                    "limit": 500}).json()
    assert [r[header.index("医院单据号")] for r in body] == [i["claim_id"] for i in listed["items"]]
    total_column = header.index("医疗费总额")
    assert last[0] == f"合计（{len(body)}）" and len(body) == listed["count"]
    assert Decimal(str(last[total_column])).quantize(Decimal("0.01")) == Decimal(listed["totals"]["total"])
    basic = header.index("基本医疗保险统筹基金支付")
    assert Decimal(str(last[basic])).quantize(Decimal("0.01")) == Decimal(listed["totals"]["basic"])
    # the page's totals row says the same
    assert page.locator("#queue-totals [data-key=total]").inner_text() == f"¥{Decimal(listed['totals']['total']):,}"


def test_import_dry_run_shows_every_problem_and_writes_nothing(page: Any, server: Server, tmp_path: Any) -> None:
    good = "230102198001010014"
    csv = ("公民身份号码,参保类型,救助对象类别,开始日期,结束日期,姓名,行政区划代码\n"
           f"{good},城乡居民,低保,2019-01-01,,王小明,230102\n"
           "230102198001010015,城乡居民,低保,2019-01-01,,李四,230102\n"  # wrong check digit
           f"{good[:-1]}X,火星居民,特困,2019-13-01,,张三,230102\n")
    path = tmp_path / "名册.csv"
    problems = import_dry_run(page, server, path, csv)
    assert int(page.locator("#import-problem-count").inner_text()) == len(problems) >= 3
    assert {p.split("\t")[0] for p in problems} >= {"3", "4"}
    shown = " ".join(problems)  # in the page's language (the catalog's), not the API's English
    assert "未知的参保类型 '火星居民'" in shown and "不是有效日期" in shown and "unknown" not in shown
    assert page.locator("#import-commit").count() == 0
    screenshot(page, "import")
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{good}").status_code == 404  # nothing written
    # the same file without its bad rows: a clean dry run, then the commit
    path.write_bytes("\n".join(csv.split("\n")[:2]).encode("gb18030") + b"\n")
    page.set_input_files("input[type=file]", str(path))
    page.click("form.upload button[type=submit]")
    page.wait_for_selector("#import-commit")
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{good}").status_code == 404  # a dry run writes nothing
    page.click("#import-commit")
    page.wait_for_selector("#import-report h2:has-text('已导入')")
    with server.api("reviewer") as api:
        person = api.get(f"/v1/persons/{good}").json()
    assert person["name"] == "王小明" and person["categories"][0]["category"] == "subsistence_allowance"
    page.goto(f"{server.base}/review/persons/{good}")
    assert "reviewer" in page.locator("#person-history").inner_text()


def test_a_district_reviewer_cannot_open_another_districts_person(context: Any, server: Server) -> None:
    done = server.cli("users", "create", "--role", "reviewer", "--name", "harbin", "--district", "2301",
                      stdin="harbin-password\n")
    assert done.returncode == 0, done.stderr
    with server.api("reviewer") as api:
        persons = api.get("/v1/persons", params={"limit": 200}).json()["items"]
        inside = next(p for p in persons if (p["district"] or "").startswith("2301"))
        outside = next(p for p in persons if p["district"] and not p["district"].startswith("2301"))
        theirs = api.get("/v1/settlements", params={"person_id": outside["person_id"]}).json()["items"]
    p = context.new_page()
    sign_in(p, server, "harbin", "harbin-password")
    p.wait_for_url(re.compile(r".*/review/settlements"))
    assert p.goto(f"{server.base}/review/persons/{inside['person_id']}").status == 200
    assert p.goto(f"{server.base}/review/persons/{outside['person_id']}").status == 404
    if theirs:
        assert p.goto(f"{server.base}/review/settlements/{theirs[0]['settlement_id']}").status == 404
    p.goto(f"{server.base}/review/settlements")
    shown = set(p.locator("#queue tbody tr td:nth-child(4)").all_inner_texts())
    assert shown and all(pid[:4] == "2301" for pid in shown)


def test_edit_a_person_with_validation(page: Any, server: Server) -> None:
    with server.api("reviewer") as api:
        person = api.get("/v1/persons", params={"limit": 1}).json()["items"][0]
        before = api.get(f"/v1/persons/{person['person_id']}").json()
    page.goto(f"{server.base}/review/persons/{person['person_id']}/edit")
    rows = page.locator("#edit-periods tbody tr")
    # a second period overlapping the first: refused, the form shown again, nothing saved
    rows.nth(1).locator("select[name=category]").select_option("low_income")
    rows.nth(1).locator("input[name=valid_from]").fill("2019-06-01")
    page.click("form.edit button[type=submit]")
    page.wait_for_selector("#edit-errors")
    assert "第 1 段与第 2 段救助类别期间重叠" in page.locator("#edit-errors").inner_text()
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{person['person_id']}").json()["categories"] == before["categories"]
    # end the first period the day before: saved, with a history record
    page.locator("#edit-periods tbody tr").nth(0).locator("input[name=valid_to]").fill("2019-05-31")
    page.click("form.edit button[type=submit]")
    page.wait_for_url(re.compile(f".*/review/persons/{person['person_id']}$"))
    with server.api("reviewer") as api:
        after = api.get(f"/v1/persons/{person['person_id']}").json()
        history = api.get(f"/v1/persons/{person['person_id']}/history").json()["items"]
    assert [(c["category"], c["valid_from"], c["valid_to"]) for c in after["categories"]] == [
        (before["categories"][0]["category"], before["categories"][0]["valid_from"], "2019-05-31"),
        ("low_income", "2019-06-01", None)]
    assert history[-1]["actor"] == "reviewer" and history[-1]["changed"] == ["categories"]
    assert page.locator("#periods tbody tr").count() == 2
