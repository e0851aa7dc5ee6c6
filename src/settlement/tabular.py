"""Files people take away: CSV (UTF-8 with a BOM, so Excel opens it), `.xlsx` and Parquet; and the one
reader of the files people bring (CSV in UTF-8 or GBK/GB18030, `.xlsx`), at the end of the module.

The one writer of tabular exports, for every list the service or the command
line hands to a clerk or an accountant. Rows are mappings with money as int
fen; a :class:`Column` says the Chinese header and how a value is written.
Both writers stream: rows are consumed one at a time, so 100,000 rows never
sit in memory (the `.xlsx` is SpreadsheetML written row by row into a zip
that is handed on as it grows). Parquet is for
analysts' tools (DuckDB, pandas, Spark): row groups of PARQUET_ROWS rows,
money as ``decimal128(18, 2)`` yuan (exact; the fen are the unscaled integer),
dates as ``date32``, datetimes as UTC ``timestamp[us]``, headers as column
names are the rows' keys (English, as in the JSON), not the Chinese ones.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, BinaryIO, Literal

from settlement.catalog import N_, MessageError
from settlement.money import format_fen

Kind = Literal["text", "int", "money", "date", "datetime"]

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
PARQUET_ROWS = 65_536
BOM = "\ufeff".encode()
TOTAL_LABEL = "合计"
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Column:
    key: str
    """The row mapping's key."""
    header: str
    """The header people see (GLOSSARY.md's Chinese word)."""
    kind: Kind = "text"
    """money: int fen, written as yuan with two decimals (a number in `.xlsx`)."""
    width: float | None = None
    """Column width in `.xlsx` (characters); None: from the header."""


def _text(value: Any, kind: Kind) -> str:
    if value is None:
        return ""
    if kind == "money":
        return format_fen(int(value))
    if kind == "datetime" and isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Totals:
    """Sums the money columns of the rows that pass through it, exactly, in fen."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.keys = [c.key for c in columns if c.kind == "money"]
        self.sums = dict.fromkeys(self.keys, 0)
        self.count = 0

    def watch(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        keys, sums = self.keys, self.sums
        for row in rows:
            get = row.get
            for key in keys:
                value = get(key)
                if value is not None:
                    sums[key] += int(value)
            self.count += 1
            yield row


def csv_chunks(
    columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], *, totals: bool = False
) -> Iterator[bytes]:
    """CSV in UTF-8 with a BOM, a header of the columns' headers; with ``totals`` a last row 合计.

    Handed on in pieces of about CHUNK bytes, not a row at a time: a streamed response takes a
    thread-pool hop per piece (100,000 one-row pieces took longer than writing them).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.header for c in columns])
    yield BOM + buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    sums = Totals(columns)
    for row in sums.watch(rows):
        writer.writerow([_text(row.get(c.key), c.kind) for c in columns])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if totals:
        writer.writerow(_total_cells(columns, sums, as_text=True))
    if buffer.tell():
        yield buffer.getvalue().encode()


def _total_cells(columns: Sequence[Column], sums: Totals, *, as_text: bool) -> list[Any]:
    cells: list[Any] = []
    for i, c in enumerate(columns):
        if c.kind == "money":
            fen = sums.sums[c.key]
            cells.append(format_fen(fen) if as_text else fen / 100)
        elif i == 0:
            cells.append(f"{TOTAL_LABEL}（{sums.count}）")
        else:
            cells.append("")
    return cells


# -- .xlsx: SpreadsheetML written directly into a streamed zip --------------------------------------
#
# xlsxwriter (constant_memory) cost ~20 µs a cell on the shared host: 100,000 rows of the review
# queue's 28 columns took ~50 s, five times the target (docs/PERFORMANCE.md, review queue). A sheet
# of plain rows needs none of what it offers beyond the XML below, which is written here with one
# string template per column: the same workbook (inline strings, the styles below) at ~1 µs a cell.

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EPOCH = dt.datetime(1899, 12, 30)
_EPOCH_DAY = _EPOCH.date()
_STYLE_HEAD, _STYLE_MONEY, _STYLE_DAY, _STYLE_STAMP, _STYLE_TOTAL_MONEY, _STYLE_TOTAL = 1, 2, 3, 4, 5, 6
_BATCH = 256
"""Rows per write into the zip (and per chunk handed on by xlsx_chunks)."""

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"'
    ' Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"'
    ' Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"'
    ' Target="styles.xml"/></Relationships>'
)
# cellXfs: 0 plain, 1 header (bold, fill, border), 2 money, 3 date, 4 date-time, 5 total money, 6 total text
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="3"><numFmt numFmtId="164" formatCode="#,##0.00"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/><numFmt numFmtId="166" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    "</numFmts>"
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFE8EEF7"/><bgColor indexed="64"/></patternFill></fill>'
    "</fills>"
    '<borders count="3"><border><left/><right/><top/><bottom/><diagonal/></border>'
    '<border><left style="thin"><color auto="1"/></left><right style="thin"><color auto="1"/></right>'
    '<top style="thin"><color auto="1"/></top><bottom style="thin"><color auto="1"/></bottom><diagonal/></border>'
    '<border><left/><right/><top style="thin"><color auto="1"/></top><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="7"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="164" fontId="1" fillId="0" borderId="2" xfId="0" applyNumberFormat="1" applyFont="1"'
    ' applyBorder="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="2" xfId="0" applyFont="1" applyBorder="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""What _escape changes: most cells hold none of it, and one search is cheaper than the replaces."""


def _escape(text: str) -> str:
    if not _SPECIAL.search(text):
        return text
    if _ILLEGAL.search(text):
        text = _ILLEGAL.sub("", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _letters(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _text_cell(ref: str, text: str, style: int = 0) -> str:
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">{_escape(text)}</t></is></c>'


def _cell(ref: str, value: Any, kind: Kind) -> str:
    """One cell of a data row ('' for an empty one)."""
    if value is None:
        return ""
    if kind == "money":
        fen = int(value)
        return f'<c r="{ref}" s="{_STYLE_MONEY}"><v>{fen // 100 if fen % 100 == 0 else fen / 100}</v></c>'
    if kind == "int" and not isinstance(value, bool):
        return f'<c r="{ref}"><v>{int(value)}</v></c>'
    if kind == "datetime" and isinstance(value, dt.datetime):
        serial = (value.replace(tzinfo=None) - _EPOCH).total_seconds() / 86400
        return f'<c r="{ref}" s="{_STYLE_STAMP}"><v>{serial!r}</v></c>'
    if kind == "date" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return f'<c r="{ref}" s="{_STYLE_DAY}"><v>{(value - _EPOCH_DAY).days}</v></c>'
    return _text_cell(ref, _text(value, kind))


def _row_writer(columns: Sequence[Column], letters: Sequence[str]) -> Any:
    """``write(row_number, row) -> '<row …>…</row>'``: _cell's XML, with the common cases (text that is
    a str, money that is an int) written inline per column, the rest through _cell."""
    text_cell = ' t="inlineStr"><is><t xml:space="preserve">'
    plan = [(c.key, c.kind, letter) for c, letter in zip(columns, letters, strict=True)]

    def write(r: int, row: Mapping[str, Any]) -> str:
        parts = [f'<row r="{r}">']
        add = parts.append
        get = row.get
        for key, kind, letter in plan:
            value = get(key)
            if value is None:
                continue
            if kind == "money" and type(value) is int:
                add(f'<c r="{letter}{r}" s="{_STYLE_MONEY}"><v>'
                    f'{value // 100 if value % 100 == 0 else value / 100}</v></c>')
            elif kind == "text" and type(value) is str:
                add(f'<c r="{letter}{r}"{text_cell}{_escape(value)}</t></is></c>')
            else:
                add(_cell(f"{letter}{r}", value, kind))
        add("</row>")
        return "".join(parts)

    return write


def _sheet_name(sheet: str) -> str:
    name = re.sub(r"[\[\]:*?/\\]", "_", sheet)[:31] or "Sheet1"
    return name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class _Sink:
    """A write-only, unseekable file: zipfile then writes data descriptors, and what it wrote is taken in chunks."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def _xlsx_steps(
    target: Any,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    sheet: str,
    totals: bool,
    sums: Totals,
) -> Iterator[None]:
    """Writes the workbook into ``target``, yielding after each batch of rows (xlsx_chunks hands them on)."""
    letters = [_letters(i) for i in range(len(columns))]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as book:
        book.writestr("[Content_Types].xml", _CONTENT_TYPES)
        book.writestr("_rels/.rels", _RELS)
        book.writestr(
            "xl/workbook.xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
            ' xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            f'<sheets><sheet name="{_sheet_name(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        book.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        book.writestr("xl/styles.xml", _STYLES)
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as out:
            widths = "".join(
                f'<col min="{i}" max="{i}" width="{c.width or max(10.0, 2.2 * len(c.header) + 2)}" customWidth="1"/>'
                for i, c in enumerate(columns, start=1)
            )
            head = "".join(_text_cell(f"{letters[i]}1", c.header, _STYLE_HEAD) for i, c in enumerate(columns))
            out.write(
                (
                    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                    '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2"'
                    ' activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft"/></sheetView></sheetViews>'
                    f'<sheetFormatPr defaultRowHeight="15"/><cols>{widths}</cols><sheetData><row r="1">{head}</row>'
                ).encode()
            )
            write = _row_writer(columns, letters)
            batch: list[str] = []
            r = 1
            for r, row in enumerate(sums.watch(rows), start=2):
                batch.append(write(r, row))
                if len(batch) >= _BATCH:
                    out.write("".join(batch).encode())
                    batch.clear()
                    yield
            if totals:
                last: list[str] = []
                for i, cell in enumerate(_total_cells(columns, sums, as_text=False)):
                    ref = f"{letters[i]}{r + 1}"
                    if columns[i].kind == "money":
                        last.append(f'<c r="{ref}" s="{_STYLE_TOTAL_MONEY}"><v>{cell!r}</v></c>')
                    elif cell != "":
                        last.append(_text_cell(ref, str(cell), _STYLE_TOTAL))
                batch.append(f'<row r="{r + 1}">{"".join(last)}</row>')
            batch.append("</sheetData></worksheet>")
            out.write("".join(batch).encode())
    yield


def write_xlsx(
    target: BinaryIO,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    sheet: str = "Sheet1",
    totals: bool = True,
) -> Totals:
    """One sheet: bold frozen header, money as numbers shown with two decimals, a 合计 row.

    Returns the totals (count and money sums in fen) of the rows written.
    """
    sums = Totals(columns)
    for _ in _xlsx_steps(target, columns, rows, sheet, totals, sums):
        pass
    return sums


def xlsx_chunks(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    sheet: str = "Sheet1",
    totals: bool = True,
) -> Iterator[bytes]:
    """The `.xlsx` of :func:`write_xlsx`, handed on as it is written (the zip streams: no temporary file)."""
    sink = _Sink()
    pending = 0
    for _ in _xlsx_steps(sink, columns, rows, sheet, totals, Totals(columns)):
        pending = sum(len(p) for p in sink.parts)
        if pending >= CHUNK:
            yield sink.take()
    if sink.parts:
        yield sink.take()


def _arrow_type(kind: Kind) -> Any:
    import pyarrow as pa

    return {
        "text": pa.string(),
        "int": pa.int64(),
        "money": pa.decimal128(18, 2),
        "date": pa.date32(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }[kind]


def _arrow_value(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind == "money":
        return Decimal(int(value)).scaleb(-2)
    if kind == "int":
        return int(value)
    if kind == "text":
        return str(value)
    return value


def write_parquet(target: BinaryIO, columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> Totals:
    """A Parquet file of the rows (column names: the rows' keys), written a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(c.key, _arrow_type(c.kind)) for c in columns])
    sums = Totals(columns)
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        group: list[list[Any]] = [[] for _ in columns]

        def flush() -> None:
            arrays = [pa.array(values, type=f.type) for values, f in zip(group, schema, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            for values in group:
                values.clear()

        for row in sums.watch(rows):
            for values, c in zip(group, columns, strict=True):
                values.append(_arrow_value(row.get(c.key), c.kind))
            if len(group[0]) >= PARQUET_ROWS:
                flush()
        if group[0] or sums.count == 0:
            flush()
    return sums


def parquet_chunks(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """The Parquet file of :func:`write_parquet`, read back in chunks (its footer comes last)."""
    with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as spool:
        write_parquet(spool, columns, rows)  # type: ignore[arg-type]
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk


def arrow_table(columns: Sequence[Column], values: Mapping[str, Any], valid: Mapping[str, Any] | None = None) -> Any:
    """A pyarrow Table from whole columns (for millions of rows): money as int64 fen arrays → decimal128(18, 2).

    values[key]: a numpy array or a list; valid[key] (optional): a bool array, False where the value is null.
    The fen are the decimal's unscaled integer, so the yuan are exact without one Python object a value.
    """
    import numpy as np
    import pyarrow as pa

    valid = valid or {}
    arrays = []
    for c in columns:
        value, mask = values[c.key], valid.get(c.key)
        if c.kind == "money":
            fen = np.ascontiguousarray(value, dtype=np.int64)
            words = np.empty((fen.shape[0], 2), dtype=np.int64)  # 128-bit little-endian two's complement
            words[:, 0] = fen
            words[:, 1] = fen >> 63
            bitmap = None if mask is None else pa.py_buffer(np.packbits(np.asarray(mask, dtype=np.bool_),
                                                                         bitorder="little"))
            arrays.append(pa.Array.from_buffers(_arrow_type("money"), fen.shape[0], [bitmap, pa.py_buffer(words)]))
        else:
            null = None if mask is None else ~np.asarray(mask, dtype=np.bool_)
            arrays.append(pa.array(value, type=_arrow_type(c.kind), mask=null))
    return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c.key, _arrow_type(c.kind)) for c in columns]))



# -- reading the files people bring ------------------------------------------------------------------
#
# A registry import and a payer's reconciliation file are read here, by the same rules: an .xlsx
# workbook's first sheet (openpyxl, read-only), else CSV text in UTF-8 (with or without a BOM) or
# GB18030 (a superset of GBK). Cells stay as the file holds them (CSV: str; .xlsx: str, int, float,
# bool, dt.date for a date cell at midnight, dt.datetime otherwise); the callers check them.


class TableError(MessageError):
    """The file cannot be read as a table at all: a catalog message saying why and what to do
    (``str()`` the English text, ``message`` for a page in its language)."""


@dataclass
class Table:
    """A file as rows of cells: (line, cells), line 1 first; blank rows included."""

    format: Literal["csv", "xlsx"]
    encoding: str | None
    """CSV only: 'utf-8', 'utf-8-sig' (UTF-8 with a BOM) or 'gb18030' (GBK files are GB18030)."""
    sheet: str | None
    """xlsx only: the sheet read (the first)."""
    rows: Iterator[tuple[int, list[Any]]]

    def header(self) -> tuple[int, list[str]] | None:
        """The first non-blank row as stripped text (a trailing run of empty cells dropped) and its line;
        the rows after it stay in ``rows``. None for a file without one."""
        for line, cells in self.rows:
            if not is_blank(cells):
                names = [cell_text(c) for c in cells]
                while names and not names[-1]:
                    names.pop()
                return line, names
        return None


def is_blank(cells: Sequence[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def cell_text(value: Any) -> str:
    """A cell as text: None is empty, a whole number has no '.0', other numbers their shortest form."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


_FOREIGN = re.compile(
    "[^\t\n\r\x20-\x7e\u00a0-\u017f\u2000-\u206f\u3000-\u303f\u3200-\u32ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uff00-\uffef]"
)
"""What a Chinese file seldom holds: anything but ASCII, Latin letters, punctuation and CJK (with fullwidth)."""


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a CSV file: UTF-8 after a BOM; else UTF-8 or GB18030 (which includes GBK).

    Bytes can read both ways: GBK 住院 is valid UTF-8 ('סԺ', Hebrew and Armenian), and UTF-8 Chinese
    often valid GB18030 (住院 as '浣忛櫌', more CJK characters than the text has). So, when both decode,
    the reading with fewer characters a Chinese file seldom holds (_FOREIGN) wins, UTF-8 on a tie: UTF-8
    Chinese has none, GBK read as UTF-8 is Cyrillic, Greek, Hebrew … . (A GBK file all of whose Chinese
    characters read as Latin letters, 茅 as 'é', is taken for UTF-8; no real file is.)
    """
    if data.startswith(BOM):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise TableError(
                N_("the file starts as UTF-8 but byte %(byte)s is not UTF-8"), byte=exc.start + 3
            ) from None
    utf8: str | None
    try:
        utf8 = data.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = None
    try:
        gbk: str | None = data.decode("gb18030")
    except UnicodeDecodeError as exc:
        if utf8 is None:
            raise TableError(
                N_("the file is neither UTF-8 nor GBK/GB18030 text (byte %(byte)s fits neither);"
                   " save it as CSV UTF-8 or as .xlsx"), byte=exc.start,
            ) from None
        gbk = None
    if utf8 is not None and (gbk is None or len(_FOREIGN.findall(utf8)) <= len(_FOREIGN.findall(gbk))):
        return utf8, "utf-8"
    assert gbk is not None
    return gbk, "gb18030"


def _csv_rows(text: str) -> Iterator[tuple[int, list[Any]]]:
    """CSV records with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TableError(N_("line %(line)s: %(error)s"), line=reader.line_num, error=str(exc)) from None


def _xlsx_cell(value: Any) -> Any:
    """Excel dates: a date cell at midnight is a date, one with a time of day a datetime."""
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date()
    return value


def _xlsx(data: bytes) -> Table:
    import openpyxl  # imported here: only .xlsx files need it

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise TableError(N_("not a readable .xlsx workbook (%(error)s)"), error=type(exc).__name__) from None
    sheet = book.worksheets[0]

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, [_xlsx_cell(v) for v in row]
        finally:
            book.close()

    return Table("xlsx", None, sheet.title, rows())


def read_table(data: bytes, filename: str | None) -> Table:
    """The file as rows: an .xlsx workbook's first sheet, else CSV text; TableError if neither."""
    name = (filename or "").lower()
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise TableError(N_("this is an old Excel .xls file: save it as .xlsx (Excel 2007 or later) or as CSV"))
    if data.startswith(b"PK\x03\x04"):
        return _xlsx(data)
    if name.endswith((".xlsx", ".xlsm")):
        raise TableError(N_("the file is named .xlsx but is not an Excel workbook (damaged, or renamed)"))
    if name.endswith((".xls", ".et", ".ods", ".numbers", ".pdf", ".doc", ".docx")):
        raise TableError(N_("only CSV and .xlsx files can be read: save the sheet as .xlsx or CSV"))
    if b"\x00" in data[:4096]:
        raise TableError(N_("the file is binary, not CSV text (UTF-16 or another format): save it as CSV UTF-8"))
    text, encoding = decode_text(data)
    return Table("csv", encoding, None, _csv_rows(text))

__all__ = [
    "CSV_MEDIA_TYPE",
    "PARQUET_MEDIA_TYPE",
    "XLSX_MEDIA_TYPE",
    "Column",
    "Table",
    "TableError",
    "Totals",
    "arrow_table",
    "cell_text",
    "csv_chunks",
    "decode_text",
    "is_blank",
    "parquet_chunks",
    "read_table",
    "write_parquet",
    "write_xlsx",
    "xlsx_chunks",
]
