"""The export writers: CSV with a BOM and `.xlsx` with a header, money as numbers and a totals row; the reader
of the files people bring: the encoding guess, line numbers, the header row, Excel dates, files that are no table."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest

from settlement.catalog import MessageError
from settlement.tabular import (
    BOM,
    Column,
    TableError,
    cell_text,
    csv_chunks,
    decode_text,
    read_table,
    write_xlsx,
    xlsx_chunks,
)

COLUMNS = [
    Column("claim_id", "结算单号"),
    Column("day", "出院日期", "date"),
    Column("n", "项目数", "int"),
    Column("basic", "基本医疗保险统筹基金支付", "money"),
]
ROWS = [
    {"claim_id": "B-1", "day": dt.date(2018, 3, 12), "n": 3, "basic": 96648},
    {"claim_id": "B-2", "day": dt.date(2018, 4, 30), "n": 1, "basic": 5},
    {"claim_id": "B-3", "day": None, "n": 2, "basic": 1},
]


def test_csv_has_bom_header_yuan_and_totals() -> None:
    data = b"".join(csv_chunks(COLUMNS, iter(ROWS), totals=True))
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0] == "结算单号,出院日期,项目数,基本医疗保险统筹基金支付"
    assert lines[1] == "B-1,2018-03-12,3,966.48"
    assert lines[3] == "B-3,,2,0.01"
    assert lines[4] == "合计（3）,,,966.54"


def test_xlsx_rows_money_and_totals_read_back() -> None:
    target = io.BytesIO()
    sums = write_xlsx(target, COLUMNS, iter(ROWS), sheet="结算单")
    assert sums.count == 3 and sums.sums["basic"] == 96654
    book = openpyxl.load_workbook(io.BytesIO(target.getvalue()))
    ws = book["结算单"]
    values = list(ws.iter_rows(values_only=True))
    assert values[0] == ("结算单号", "出院日期", "项目数", "基本医疗保险统筹基金支付")
    assert values[1][0] == "B-1" and values[1][1] == dt.datetime(2018, 3, 12) and values[1][3] == 966.48
    assert values[4][0] == "合计（3）" and values[4][3] == 966.54
    assert ws.freeze_panes == "A2"
    assert ws.cell(2, 4).number_format == "#,##0.00"


def test_xlsx_chunks_is_the_same_workbook() -> None:
    data = b"".join(xlsx_chunks(COLUMNS, iter(ROWS)))
    assert data[:2] == b"PK"
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert len(rows) == 5


def test_xlsx_escapes_text_and_streams_in_chunks() -> None:
    columns = [Column("t", "文本"), Column("at", "结算时间", "datetime"), Column("m", "金额", "money")]
    rows = [{"t": f"<a & b> {i}\x01", "at": dt.datetime(2025, 3, 1, 8, 30, 15), "m": -i} for i in range(20_000)]
    chunks = list(xlsx_chunks(columns, iter(rows), sheet="a/b:c"))
    assert len(chunks) > 2  # handed on while being written, not at the end only
    book = openpyxl.load_workbook(io.BytesIO(b"".join(chunks)), read_only=True)
    values = list(book.active.iter_rows(values_only=True))
    assert book.sheetnames == ["a_b_c"]
    assert values[1] == ("<a & b> 0", dt.datetime(2025, 3, 1, 8, 30, 15), 0)
    assert values[20_000][0] == "<a & b> 19999" and values[20_000][2] == -199.99
    assert values[-1][0] == "合计（20000）" and values[-1][2] == -sum(range(20_000)) / 100


# -- the reader -------------------------------------------------------------------------------------

GBK_ALSO_UTF8 = "hospital_id,claim_id,name\nH1,住院-001,谢英\n"
"""住院 and 谢英 in GBK are valid UTF-8 too (as 'סԺ', 'лӢ'): the reading with more Chinese wins."""


def test_gbk_that_is_also_valid_utf8_is_read_as_gbk() -> None:
    data = GBK_ALSO_UTF8.encode("gbk")
    assert data.decode("utf-8") != GBK_ALSO_UTF8  # valid UTF-8, but not the text
    assert decode_text(data) == (GBK_ALSO_UTF8, "gb18030")
    assert GBK_ALSO_UTF8.encode().decode("gb18030") != GBK_ALSO_UTF8  # and UTF-8 Chinese is valid GB18030
    assert decode_text(GBK_ALSO_UTF8.encode()) == (GBK_ALSO_UTF8, "utf-8")
    assert decode_text(BOM + GBK_ALSO_UTF8.encode()) == (GBK_ALSO_UTF8, "utf-8-sig")
    assert decode_text(b"a,b\n1,2\n") == ("a,b\n1,2\n", "utf-8")  # a tie (no Chinese): UTF-8


def test_csv_rows_carry_the_line_each_record_starts_on() -> None:
    table = read_table(b'\n\nh,note\n1,"two\nlines"\n2,x\n', "t.csv")
    assert (table.format, table.encoding, table.sheet) == ("csv", "utf-8", None)
    assert table.header() == (3, ["h", "note"])
    assert list(table.rows) == [(4, ["1", "two\nlines"]), (6, ["2", "x"])]


def test_xlsx_date_cells_are_dates_and_numbers_keep_their_type() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "名册"
    sheet.append([])
    sheet.append(["day", "stamp", "n", "amount", None])
    sheet.append([dt.datetime(2019, 1, 1), dt.datetime(2019, 1, 1, 8, 30), 12, 966.48])
    out = io.BytesIO()
    book.save(out)
    table = read_table(out.getvalue(), "名册.xlsx")
    assert (table.format, table.encoding, table.sheet) == ("xlsx", None, "名册")
    assert table.header() == (2, ["day", "stamp", "n", "amount"])
    (line, cells), = list(table.rows)
    assert line == 3 and cells[:4] == [dt.date(2019, 1, 1), dt.datetime(2019, 1, 1, 8, 30), 12, 966.48]
    assert [cell_text(c) for c in cells[:4]] == ["2019-01-01", "2019-01-01T08:30:00", "12", "966.48"]


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (b"\xd0\xcf\x11\xe0rest", "a.xls", "old Excel .xls"),
        (b"PK\x03\x04garbage", "a.xlsx", "not a readable .xlsx"),
        (b"a,b\n", "a.xlsx", "named .xlsx but is not"),
        (b"a\x00b\n", "a.csv", "binary"),
        (b"\xff\xfe\xfa\xfb", "a.csv", "neither UTF-8 nor GBK"),
        (BOM + b"\xff", "a.csv", "starts as UTF-8"),
    ],
)
def test_a_file_that_is_no_table_says_why(data: bytes, name: str, says: str) -> None:
    with pytest.raises(TableError, match=says) as caught:
        read_table(data, name)
    # one way to carry a translatable error: a catalog.MessageError whose English text is the API's
    assert isinstance(caught.value, MessageError) and str(caught.value) == str(caught.value.message)
