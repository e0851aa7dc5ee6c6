"""The registry's checks speak the page's language: a bad person id, district or name on the edit and
registration forms, the search form and in an import's dry run is said in Chinese on a Chinese page
(English on an English one), while the API keeps its English text; nothing is written."""

from __future__ import annotations

import re
from typing import Any

from settlement.claims.person_id import CHECK, WEIGHTS

from .conftest import Server, import_dry_run, sign_in

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def valid_id(first17: str) -> str:
    return first17 + CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def _errors(page: Any) -> str:
    page.wait_for_selector("#edit-errors")
    return str(page.locator("#edit-errors").inner_text())


def _a_person(server: Server) -> tuple[str, dict[str, Any], int]:
    with server.api("reviewer") as api:
        pid = api.get("/v1/persons", params={"limit": 5}).json()["items"][-1]["person_id"]
        return pid, api.get(f"/v1/persons/{pid}").json(), len(api.get(f"/v1/persons/{pid}/history").json()["items"])


def _unchanged(server: Server, pid: str, before: dict[str, Any], changes: int) -> None:
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{pid}").json() == before
        assert len(api.get(f"/v1/persons/{pid}/history").json()["items"]) == changes


def test_edit_form_says_a_bad_district_and_name_in_chinese_and_writes_nothing(page: Any, server: Server) -> None:
    pid, before, changes = _a_person(server)
    page.goto(f"{server.base}/review/persons/{pid}/edit")
    page.fill("input[name=district]", "990102")  # six digits (the form's pattern), but no province 99
    page.click("form.edit button[type=submit]")
    shown = _errors(page)
    assert "行政区划代码 990102：99 不是省级代码" in shown and "province" not in shown
    _unchanged(server, pid, before, changes)
    # a name longer than 100 characters (the input's maxlength removed, as an old browser would send it)
    page.eval_on_selector("input[name=name]", "e => e.removeAttribute('maxlength')")
    page.fill("input[name=name]", "长" * 101)
    page.fill("input[name=district]", before["district"] or "")
    page.click("form.edit button[type=submit]")
    shown = _errors(page)
    assert "姓名超过 100 个字符" in shown and "longer" not in shown
    # a name of control characters only, and a period ending before it starts: every problem, in Chinese
    page.fill("input[name=name]", "\u202e\u202c")
    page.locator("#edit-periods tbody tr").nth(0).locator("input[name=valid_to]").fill("1990-01-01")
    page.click("form.edit button[type=submit]")
    shown = _errors(page)
    assert "姓名含有控制字符或文字方向控制字符" in shown and "第 1 段期间：结束日期早于开始日期" in shown
    assert not re.search(r"[A-Za-z]{3,}", shown), shown  # no English words left
    _unchanged(server, pid, before, changes)


def test_registration_says_a_bad_person_id_in_chinese_and_refuses_a_registered_one(
    page: Any, server: Server
) -> None:
    page.goto(f"{server.base}/review/persons?district=23x")  # the search form's district, mistyped
    assert page.locator("#search-problem").inner_text() == "行政区划代码应为 2、4 或 6 位数字，填写的是 '23x'"
    assert page.locator("#persons").count() == 0
    page.click("#register-person")
    page.wait_for_url(re.compile(r".*/review/persons/new$"))
    good = valid_id("23010219880808001")
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{good}").status_code == 404
        # the API keeps its English text for the same id
        refused = api.put(f"/v1/persons/{wrong_check}", json={
            "scheme": "resident", "categories": [{"category": "none", "valid_from": "2019-01-01"}]})
        assert refused.status_code == 422 and refused.json()["detail"] == "person_id check character is wrong"
    rows = page.locator("#edit-periods tbody tr")
    for pid, said in ((wrong_check, "公民身份号码校验码错误"),
                      (valid_id("23010219880230001"), "公民身份号码中的出生日期 19880230 不是有效日期"),
                      ("2301021988", "公民身份号码应为 18 位，实为 10 位")):
        page.fill("input[name=person_id]", pid)
        rows.nth(0).locator("select[name=category]").select_option("low_income")
        rows.nth(0).locator("input[name=valid_from]").fill("2019-01-01")
        page.click("form.edit button[type=submit]")
        shown = _errors(page)
        assert said in shown and "person_id" not in shown and "character" not in shown, shown
        assert page.locator("input[name=person_id]").input_value() == pid  # the form keeps what was typed
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{wrong_check}").status_code == 404
    # a valid new id is registered, with its history record
    page.fill("input[name=person_id]", good)
    page.fill("input[name=name]", "赵新")
    page.fill("input[name=district]", "230102")
    page.click("form.edit button[type=submit]")
    page.wait_for_url(re.compile(f".*/review/persons/{good}$"))
    with server.api("reviewer") as api:
        person = api.get(f"/v1/persons/{good}").json()
        assert person["name"] == "赵新" and person["categories"][0]["category"] == "low_income"
        changes = len(api.get(f"/v1/persons/{good}/history").json()["items"])
    # registering it again is refused: the registration is edited on its own page, nothing is replaced
    page.goto(f"{server.base}/review/persons/new")
    page.fill("input[name=person_id]", good)
    page.locator("#edit-periods tbody tr").nth(0).locator("select[name=category]").select_option("none")
    page.locator("#edit-periods tbody tr").nth(0).locator("input[name=valid_from]").fill("2020-01-01")
    page.click("form.edit button[type=submit]")
    assert f"{good} 已在救助对象名册中" in _errors(page)
    _unchanged(server, good, person, changes)
    # the edit form registers nobody: an edit of an id not in the registry is 404, nothing written
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    stranger = valid_id("23010219880808002")
    response = page.request.post(f"{server.base}/review/persons/{stranger}/edit", form={
        "csrf_token": token, "scheme": "resident", "category": "none", "valid_from": "2019-01-01", "valid_to": ""})
    assert response.status == 404
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{stranger}").status_code == 404


def test_import_dry_run_says_bad_ids_districts_and_names_in_chinese(page: Any, server: Server, tmp_path: Any) -> None:
    right = valid_id("23010219750920077")
    bad_check = right[:-1] + ("0" if right[-1] != "0" else "1")
    csv = ("公民身份号码,参保类型,救助对象类别,开始日期,结束日期,姓名,行政区划代码\n"
           f"{bad_check},城乡居民,低保,2019-01-01,,李四,230102\n"
           f"{valid_id('23010219750920078')},城乡居民,低保,2019-01-01,,{'长' * 101},990102\n"
           "too,few\n")
    path = tmp_path / "名册.csv"
    problems = import_dry_run(page, server, path, csv)
    shown = "\n".join(problems)
    assert "公民身份号码校验码错误" in shown and "姓名超过 100 个字符" in shown and "99 不是省级代码" in shown
    assert "4\t整行\t" in shown  # a row without a column to name
    assert not re.search(r"[A-Za-z]{3,}", shown), shown
    assert page.locator("#import-commit").count() == 0
    with server.api("reviewer") as api:
        assert api.get(f"/v1/persons/{bad_check}").status_code == 404
        assert api.get(f"/v1/persons/{valid_id('23010219750920078')}").status_code == 404


def test_an_english_page_says_them_in_english(context: Any, server: Server) -> None:
    done = server.cli("users", "create", "--role", "reviewer", "--name", "english-clerk",
                      stdin="english-clerk-password\n")
    assert done.returncode == 0, done.stderr
    page = context.new_page()
    sign_in(page, server, "english-clerk", "english-clerk-password")
    page.wait_for_url(re.compile(r".*/review/settlements"))
    page.click("button[name=language][value=en]")
    page.wait_for_load_state()
    pid, before, changes = _a_person(server)
    page.goto(f"{server.base}/review/persons/{pid}/edit")
    page.fill("input[name=district]", "990102")
    page.click("form.edit button[type=submit]")
    shown = _errors(page)
    assert "district 990102: 99 is not a province code" in shown and not CHINESE.search(shown), shown
    _unchanged(server, pid, before, changes)
