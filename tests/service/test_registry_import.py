"""Registry imports as clerks bring them: GBK and UTF-8 (BOM) CSV, .xlsx with date cells,
Chinese headers and labels; a dry run that reports every row's problems and writes nothing."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from service_helpers import person_id

A, B, C = person_id(11), person_id(12), person_id(13, birth="20100615")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHINESE_HEADER = "公民身份号码,姓名,参保类型,救助对象类别,开始日期,结束日期,行政区划代码\n"
CHINESE_ROWS = (
    f"{A},张三,城乡居民,低保,2018-01-01,2018-12-31,230102\n"
    f"{A},张三,城乡居民基本医疗保险,最低生活保障对象（低保）,2019/1/1,,230102\n"
    f"{B},李四,城镇职工,普通,2018年3月1日,,230103\n"
    f"{C},王小明,居民医保,建档立卡,20100615,,231202\n"
)


def post(client: Any, headers: dict[str, str], data: bytes, content_type: str = "text/csv",
         dry_run: bool | None = None) -> Any:
    params = {} if dry_run is None else {"dry_run": str(dry_run).lower()}
    return client.post("/v1/persons/import", content=data, params=params,
                       headers={**headers, "Content-Type": content_type})


def upload(client: Any, headers: dict[str, str], name: str, data: bytes, dry_run: bool) -> Any:
    return client.post("/v1/persons/import", params={"dry_run": str(dry_run).lower()},
                       files={"file": (name, data, "application/octet-stream")}, headers=headers)


def entry(client: Any, headers: dict[str, str], pid: str) -> dict[str, Any]:
    response = client.get(f"/v1/persons/{pid}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def check_chinese_import(client: Any, auth: dict[str, dict[str, str]]) -> None:
    a = entry(client, auth["reviewer"], A)
    assert a["name"] == "张三" and a["district"] == "230102" and a["scheme"] == "resident"
    assert [(p["category"], p["valid_from"], p["valid_to"]) for p in a["categories"]] == [
        ("subsistence_allowance", "2018-01-01", "2018-12-31"), ("subsistence_allowance", "2019-01-01", None)]
    b = entry(client, auth["reviewer"], B)
    assert (b["scheme"], b["categories"][0]["category"], b["categories"][0]["valid_from"]) == (
        "employee", "none", "2018-03-01")
    assert entry(client, auth["reviewer"], C)["categories"][0]["category"] == "registered_poor"


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8", "utf-8-sig"])
def test_chinese_csv_in_every_encoding_dry_run_then_commit(client, auth, encoding):
    data = (CHINESE_HEADER + CHINESE_ROWS).encode(encoding)
    if encoding.startswith("gb"):
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")  # a real GBK file, not UTF-8 by luck
    dry = upload(client, auth["reviewer"], "名册.csv", data, dry_run=True)
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["ok"] and report["dry_run"] and not report["committed"] and report["problems"] == []
    assert report["encoding"] == ("gb18030" if encoding.startswith("gb") else encoding)
    assert report["format"] == "csv" and report["filename"] == "名册.csv"
    assert (report["rows"], report["persons"], report["periods"], report["new"]) == (4, 3, 4, 3)
    assert report["columns"]["person_id"] == "公民身份号码" and report["columns"]["district"] == "行政区划代码"
    assert client.get(f"/v1/persons/{A}", headers=auth["reviewer"]).status_code == 404  # nothing written
    done = upload(client, auth["reviewer"], "名册.csv", data, dry_run=False)
    assert done.status_code == 200, done.text
    assert done.json()["committed"] and done.json()["new"] == 3
    check_chinese_import(client, auth)
    again = upload(client, auth["reviewer"], "名册.csv", data, dry_run=True).json()
    assert (again["new"], again["changed"], again["unchanged"]) == (0, 0, 3)


def test_a_gbk_file_that_is_also_valid_utf8_is_read_as_gbk(client, auth):
    # 谢英 in GBK reads as UTF-8 too ('лӢ'): the reader (settlement.tabular) takes the reading that is Chinese
    data = f"person_id,scheme,category,valid_from,name\n{A},resident,none,2018-01-01,谢英\n".encode("gbk")
    assert data.decode("utf-8") != data.decode("gbk")
    report = upload(client, auth["reviewer"], "名册.csv", data, dry_run=False).json()
    assert report["committed"] and report["encoding"] == "gb18030"
    assert entry(client, auth["reviewer"], A)["name"] == "谢英"


def xlsx_bytes(rows: list[list[Any]], number_format_text: bool = True) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "救助对象名册"
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_with_date_cells_and_text_dates(client, auth):
    rows = [
        ["序号", "公民身份号码", "姓名", "参保类型", "救助对象类别", "开始日期", "结束日期", "行政区划代码"],
        [1, A, "张三", "城乡居民", "低保", dt.datetime(2018, 1, 1), dt.date(2018, 12, 31), 230102],
        [2, A, "张三", "城乡居民", "低保", "2019-01-01", None, "230102"],
        [3, B.lower() if B.endswith("X") else B, "李四", "城镇职工", "普通", dt.datetime(2018, 3, 1), None, 230103],
        [None, None, None, None, None, None, None, None],  # a blank row: skipped
        [4, C, "王小明", "居民", "建档立卡", "2010.6.15", "", "231202"],
    ]
    data = xlsx_bytes(rows)
    dry = post(client, auth["admin"], data, XLSX, dry_run=True).json()
    assert dry["ok"], dry["problems"]
    assert (dry["format"], dry["sheet"], dry["encoding"], dry["rows"], dry["persons"]) == (
        "xlsx", "救助对象名册", None, 4, 3)
    assert client.get(f"/v1/persons/{A}", headers=auth["reviewer"]).status_code == 404
    done = post(client, auth["admin"], data, XLSX)
    assert done.status_code == 200 and done.json()["committed"], done.text
    check_chinese_import(client, auth)


def test_xlsx_problems_ids_as_numbers_and_bad_dates(client, auth):
    rows = [
        ["person_id", "scheme", "category", "valid_from", "valid_to"],
        [int(A[:17] + "0") if A[17] != "X" else 230102197001010000, "resident", "none", dt.date(2018, 1, 1), None],
        [B, "resident", "none", 43101, None],  # an Excel serial number, not a date cell
        [B, "resident", "none", dt.datetime(2019, 1, 1, 8, 30), None],
    ]
    report = upload(client, auth["reviewer"], "persons.xlsx", xlsx_bytes(rows), dry_run=True).json()
    assert not report["ok"]
    found = {(p["line"], p["field"]) for p in report["problems"]}
    assert found == {(2, "person_id"), (3, "valid_from"), (4, "valid_from")}
    messages = " ".join(p["message"] for p in report["problems"])
    assert "15 digits" in messages and "format the cell as a date" in messages and "time of day" in messages


def test_dry_run_lists_every_problem_of_every_row_and_writes_nothing(client, auth):
    text = CHINESE_HEADER + (
        f"{A},张三,城乡居民,低保,2018-01-01,,230102\n"  # fine
        f"{A[:-1]}0,赵六,农民,富裕,2018-13-01,,2301\n"  # line 3: id, scheme, category, date, district
        f"{B},李四,城镇职工,普通,2018-01-01,2017-12-31,230103\n"  # line 4: ends before it starts
        f"{C},王小明,城乡居民,特困,2010-06-14,,231202\n"  # line 5: before birth
        f"{B},李四,城乡居民,普通,2019-01-01,,230103\n"  # line 6: another scheme for B … (B's line 4 failed)
        f"{A},张三丰,城乡居民,低保,2019-01-01,,230102\n"  # line 7: another name for A
    )
    report = post(client, auth["reviewer"], text.encode("gbk"), dry_run=True).json()
    assert not report["ok"] and report["problems_total"] == len(report["problems"])
    by_line: dict[int, set[str]] = {}
    for p in report["problems"]:
        by_line.setdefault(p["line"], set()).add(p["field"])
        assert p["column"] in CHINESE_HEADER  # named as the file names it
    assert by_line == {3: {"person_id", "scheme", "category", "valid_from", "district"}, 4: {"valid_to"},
                       5: {"valid_from"}, 7: {"name"}}
    assert any("2010-06-15" in p["message"] for p in report["problems"])
    committed = post(client, auth["reviewer"], text.encode("gbk"))
    assert committed.status_code == 422 and committed.json()["code"] == "invalid_import"
    assert len(committed.json()["errors"]) == report["problems_total"]
    for pid in (A, B, C):
        assert client.get(f"/v1/persons/{pid}", headers=auth["reviewer"]).status_code == 404


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"", "empty"),
        (b"\xd0\xcf\x11\xe0" + b"\x00" * 100, "old Excel .xls"),
        (b"PK\x03\x04garbage", "not a readable .xlsx"),
        ("公民身份号码,参保类型\n".encode("utf-16"), "binary"),
        (b"\xff\xfe\xfa\xfb", "neither UTF-8 nor GBK"),
        (b"person_id,scheme,category,valid_from,colour\n", "unknown column 'colour'"),
        ("姓名,参保类型\n".encode("gbk"), "公民身份号码"),
        (b"person_id,scheme,category,valid_from\n", "no rows"),
    ],
)
def test_files_that_will_not_do_are_named(client, auth, data, expected):
    report = post(client, auth["reviewer"], data, dry_run=True)
    assert report.status_code == 200, report.text
    assert not report.json()["ok"]
    assert expected in " ".join(p["message"] for p in report.json()["problems"])


def test_import_media_types_and_roles(client, auth):
    data = (CHINESE_HEADER + CHINESE_ROWS).encode()
    assert post(client, auth["reviewer"], data, "application/json").status_code == 415
    assert post(client, auth["insurer"], data, dry_run=True).status_code == 403
    assert post(client, auth["hospital"], data, dry_run=True).status_code == 403
    assert post(client, auth["reviewer"], data, "text/csv; charset=gbk", dry_run=True).json()["ok"]
    assert client.post("/v1/persons/import?dry_run=maybe", content=data,
                       headers={**auth["reviewer"], "Content-Type": "text/csv"}).status_code in (400, 422)


def test_a_file_without_name_or_district_columns_keeps_them(client, auth):
    assert post(client, auth["reviewer"], (CHINESE_HEADER + CHINESE_ROWS).encode()).status_code == 200
    plain = f"身份证号,险种,对象类别,起始日期\n{A},城乡居民,特困供养人员,2020-01-01\n"
    done = post(client, auth["reviewer"], plain.encode("gbk"))
    assert done.status_code == 200 and done.json()["changed"] == 1, done.text
    a = entry(client, auth["reviewer"], A)
    assert a["name"] == "张三" and a["district"] == "230102"
    assert [p["category"] for p in a["categories"]] == ["extreme_poverty"]
    history = client.get(f"/v1/persons/{A}/history", headers=auth["reviewer"]).json()["items"]
    assert [h["source"] for h in history] == ["import", "import"] and history[1]["changed"] == ["categories"]


def test_a_scoped_reviewer_imports_only_into_the_district(client, auth, app):
    from test_registry_history import scoped

    assert post(client, auth["admin"], (CHINESE_HEADER + CHINESE_ROWS).encode()).status_code == 200
    with scoped(app, "230102"):
        mine = f"公民身份号码,参保类型,救助对象类别,开始日期\n{A},城乡居民,特困,2020-01-01\n"
        assert post(client, {}, mine.encode(), dry_run=True).json()["ok"]
        theirs = mine + f"{B},城镇职工,普通,2020-01-01\n"  # B is in 230103
        report = post(client, {}, theirs.encode(), dry_run=True).json()
        assert [(p["line"], p["field"]) for p in report["problems"]] == [(3, "person_id")]
        header = "公民身份号码,参保类型,救助对象类别,开始日期\n"
        new_without_district = f"{header}{person_id(20)},城乡居民,特困,2020-01-01\n"
        report = post(client, {}, new_without_district.encode(), dry_run=True).json()
        assert report["problems"][0]["field"] == "district"
        assert post(client, {}, theirs.encode()).status_code == 422
    assert entry(client, auth["admin"], B)["scheme"] == "employee"


def test_cli_import_messages(tmp_path: Path, monkeypatch: Any, capsys: Any):
    from test_cli import cli

    db = tmp_path / "cli.db"
    gbk = tmp_path / "名册.csv"
    gbk.write_bytes((CHINESE_HEADER + CHINESE_ROWS).encode("gbk"))
    status, out, err = cli(["persons", "import", str(gbk), "--dry-run"], monkeypatch, capsys, db)
    assert status == 0, err
    assert "GBK/GB18030" in out and "dry run: 4 rows, 3 persons (3 new" in out and "nothing was written" in out
    status, out, err = cli(["persons", "import", str(gbk)], monkeypatch, capsys, db)
    assert status == 0 and "imported 4 rows, 3 persons (3 new" in out, err
    status, out, err = cli(["persons", "import", str(tmp_path / "missing.csv")], monkeypatch, capsys, db)
    assert status == 2 and out == "" and err.strip() == f"{tmp_path / 'missing.csv'}: no such file"
    status, out, err = cli(["persons", "import", str(tmp_path)], monkeypatch, capsys, db)
    assert status == 2 and "is a folder" in err
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 64)
    status, out, err = cli(["persons", "import", str(xls)], monkeypatch, capsys, db)
    assert status == 2 and "save it as .xlsx" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text(CHINESE_HEADER + f"{A},张三,城乡居民,富裕,2018-01-01,,230102\n", encoding="utf-8")
    status, out, err = cli(["persons", "import", str(bad)], monkeypatch, capsys, db)
    assert status == 1 and f"{bad}:2: 救助对象类别 unknown category '富裕'" in err
    assert "nothing was imported" in err and "Traceback" not in err
