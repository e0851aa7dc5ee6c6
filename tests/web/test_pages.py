"""The workspace in a browser: sign in, the queue and its filter, a settlement's waterfall against its amounts,
the language switch, the dashboard and a person's page; refusals (CSRF, API keys, sign-in)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx

from .conftest import Server, screenshot, sign_in


def yuan(value: str) -> str:
    """The API's "1234.50" as the pages write it: ¥1,234.50."""
    amount = Decimal(value)
    return f"{'-' if amount < 0 else ''}¥{abs(amount):,.2f}"


def test_queue_lists_settlements_and_filters_by_category(page: Any, server: Server) -> None:
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 50  # a full first page of the demo's settlements
    assert page.locator("a[rel=next]").count() == 1
    screenshot(page, "queue")
    page.select_option("select[name=category]", "subsistence_allowance")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*category=subsistence_allowance.*"))
    with server.api("reviewer") as api:
        expected = api.get("/v1/settlements", params={"category": "subsistence_allowance", "limit": 500}).json()
    claims = page.locator("#queue tbody tr td:nth-child(2)").all_inner_texts()
    assert claims == [item["claim_id"] for item in expected["items"]] and claims
    assert set(page.locator("#queue tbody tr td:nth-child(5)").all_inner_texts()) == {"低保对象"}


def _waterfall_labels(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#waterfall svg text").all_text_contents() if t.strip().startswith("¥")]


def test_settlement_waterfall_shows_the_settlements_amounts(page: Any, server: Server) -> None:
    with server.api("reviewer") as api:
        items = api.get("/v1/settlements", params={"limit": 500}).json()["items"]
        # one with charity and something the patient pays: the richest waterfall
        chosen = max(items, key=lambda i: (Decimal(i["payments"]["charity"]) > 0, Decimal(i["amounts"]["total"])))
        body = api.get(f"/v1/settlements/{chosen['settlement_id']}").json()
    page.goto(f"{server.base}/review/settlements/{body['settlement_id']}")
    labels = _waterfall_labels(page)
    expected = [body["amounts"]["total"]]
    expected += [body["payments"][k] for k in ("basic", "critical_illness", "medical_assistance")]
    expected += list(body["charity_by_fund"].values())
    expected += [body["payments"]["backstop"], body["patient_pays"], body["hospital_bears"]]
    assert labels == [yuan(v) for v in expected if Decimal(v) > 0]
    # the payments table says the same, and the parts add up to the total
    assert page.locator("#payments [data-key=total]").inner_text() == yuan(body["amounts"]["total"])
    assert page.locator("#payments [data-key=basic]").inner_text() == yuan(body["payments"]["basic"])
    assert sum(Decimal(v) for v in expected) == 2 * Decimal(body["amounts"]["total"])
    # the trace in words, translated, with the engine's numbers
    trace = page.locator("ol.trace").inner_text()
    assert "政策范围内" in trace and body["payments"]["basic"] in trace
    screenshot(page, "settlement")


def test_reversal_history_says_who_when_and_why(page: Any, server: Server) -> None:
    with server.api("reviewer") as api:
        reversed_ = api.get("/v1/settlements", params={"status": "reversed"}).json()["items"]
    assert len(reversed_) == 1
    page.goto(f"{server.base}/review/settlements/{reversed_[0]['settlement_id']}")
    history = page.locator("#history tbody").inner_text()
    assert "已撤销" in history and "账单录入错误" in history and "demo" in history


def test_language_switch_is_kept_for_the_user(page: Any, server: Server) -> None:
    assert page.locator("h1").inner_text() == "待审核结算单"
    page.click("button[name=language][value=en]")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Settlements for review"
    page.goto(f"{server.base}/review/dashboard")  # the choice is the user's, not the page's
    assert page.locator("h1").inner_text() == "Dashboard"
    page.click("button[name=language][value=zh_CN]")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "统计分析"


def test_dashboard_and_person_pages(page: Any, server: Server) -> None:
    page.goto(f"{server.base}/review/dashboard")
    assert page.locator("figure.chart svg").count() >= 4
    with server.api("reviewer") as api:
        items = api.get("/v1/settlements", params={"limit": 500, "status": "settled"}).json()["items"]
    total_basic = sum(Decimal(i["payments"]["basic"]) for i in items)
    assert yuan(str(total_basic)) in page.locator("#dashboard-total").inner_text()
    screenshot(page, "dashboard")
    person = items[0]["person_id"]
    page.goto(f"{server.base}/review/persons")
    page.fill("input[name=q]", person)
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(f".*/review/persons\\?q={person}.*"))
    assert page.locator("#persons tbody tr").count() == 1
    page.click(f"#persons a[href='/review/persons/{person}']")
    page.wait_for_url(re.compile(f".*/review/persons/{person}"))
    assert page.locator("#timeline svg").count() == 1 and page.locator("#position tbody tr").count() >= 3
    claims = page.locator("#person-settlements tbody tr td:nth-child(2)").all_inner_texts()
    assert items[0]["claim_id"] in claims
    screenshot(page, "person")


def test_a_form_without_its_csrf_token_is_refused(page: Any, server: Server) -> None:
    response = page.request.post(f"{server.base}/logout", form={"csrf_token": "forged"})
    assert response.status == 403
    response = page.request.post(f"{server.base}/preferences/language", form={"language": "en"})
    assert response.status == 403
    page.goto(f"{server.base}/review/settlements")  # still signed in, still Chinese
    assert page.locator("h1").inner_text() == "待审核结算单"


def test_a_bad_filter_in_a_pages_url_is_said_in_chinese(page: Any, server: Server) -> None:
    """The page's own checks of its filters, on the error page in the page's language (the English text for
    the administrator under it)."""
    answer = page.goto(f"{server.base}/review/dashboard?district=23x")
    assert answer is not None and answer.status == 400
    assert page.locator("#error-message").inner_text() == "行政区划代码应为 2、4 或 6 位数字，填写的是 '23x'"
    answer = page.goto(f"{server.base}/review/settlements?settled_from=2019-13-01")
    assert answer is not None and answer.status == 400
    assert page.locator("#error-message").inner_text() == "settled_from：'2019-13-01' 不是日期（格式 YYYY-MM-DD）"
    assert "settled_from: not a date (YYYY-MM-DD): '2019-13-01'" in (page.locator("details").text_content() or "")


def test_an_api_key_opens_no_page(server: Server) -> None:
    for role in ("hospital_h0002", "reviewer", "admin"):
        response = httpx.get(f"{server.base}/review/settlements", headers={
            "Authorization": f"Bearer {server.keys[role]}"}, timeout=30)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_wrong_password_shows_the_form_again(context: Any, server: Server) -> None:
    p = context.new_page()
    sign_in(p, server, password="not-the-password")
    assert p.locator("p.error").inner_text() == "用户名或密码错误。"
    assert p.url.endswith("/login")


def test_sign_out_ends_the_session(context: Any, server: Server) -> None:
    p = context.new_page()
    sign_in(p, server)
    p.wait_for_url(re.compile(r".*/review/settlements"))
    cookie = next(c for c in context.cookies() if c["name"] == "stl_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    p.click("header form[action='/logout'] button")
    p.wait_for_url(re.compile(r".*/login"))
    # the old cookie no longer opens a page
    response = httpx.get(f"{server.base}/review/settlements", cookies={"stl_session": cookie["value"]}, timeout=30)
    assert response.status_code == 303


def test_docs_page_is_served_locally(page: Any, server: Server) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{server.base}/docs")
    page.wait_for_selector(".swagger-ui .authorize")
    assert requested and all(url.startswith(server.base) for url in requested)
    # Authorize with a key, then "Try it out": the request carries the Bearer key and is answered 200
    page.click(".swagger-ui button.authorize")
    page.fill(".modal-ux input", server.keys["reviewer"])
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")
    page.click("#operations-schedules-list_schedules_v1_schedules_get .opblock-summary")
    page.click("#operations-schedules-list_schedules_v1_schedules_get button.try-out__btn")
    with page.expect_response(lambda r: r.url.endswith("/v1/schedules")) as answer:
        page.click("#operations-schedules-list_schedules_v1_schedules_get button.execute")
    assert answer.value.status == 200
    assert answer.value.request.headers["authorization"] == f"Bearer {server.keys['reviewer']}"
