"""Files people take away: CSV (UTF-8 with a BOM, so Excel opens it), `.xlsx` and Parquet.

The one writer of tabular exports, for every list the service or the command
line hands to a clerk or an accountant. Rows are mappings with money as int
fen; a :class:`Column` says the Chinese header and how a value is written.
Both writers stream: rows are consumed one at a time, so 100,000 rows never
sit in memory (the `.xlsx` goes through xlsxwriter's constant-memory mode
into a temporary file that spills to disk past a few MB). Parquet is for
analysts' tools (DuckDB, pandas, Spark): row groups of PARQUET_ROWS rows,
money as ``decimal128(18, 2)`` yuan (exact; the fen are the unscaled integer),
dates as ``date32``, datetimes as UTC ``timestamp[us]``, headers as column
names are the rows' keys (English, as in the JSON), not the Chinese ones.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, BinaryIO, Literal

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
        for row in rows:
            for key in self.keys:
                value = row.get(key)
                if value is not None:
                    self.sums[key] += int(value)
            self.count += 1
            yield row


def csv_chunks(
    columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], *, totals: bool = False
) -> Iterator[bytes]:
    """CSV in UTF-8 with a BOM, a header of the columns' headers; with ``totals`` a last row 合计."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.header for c in columns])
    yield BOM + buffer.getvalue().encode()
    sums = Totals(columns)
    for row in sums.watch(rows):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_text(row.get(c.key), c.kind) for c in columns])
        yield buffer.getvalue().encode()
    if totals:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(_total_cells(columns, sums, as_text=True))
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
    import xlsxwriter  # an export's cost, not every command's start

    book = xlsxwriter.Workbook(target, {"constant_memory": True, "in_memory": False})
    try:
        ws = book.add_worksheet(sheet[:31])
        head = book.add_format({"bold": True, "bg_color": "#E8EEF7", "border": 1})
        money = book.add_format({"num_format": "#,##0.00"})
        day = book.add_format({"num_format": "yyyy-mm-dd"})
        stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        bold_money = book.add_format({"num_format": "#,##0.00", "bold": True, "top": 1})
        bold = book.add_format({"bold": True, "top": 1})
        for i, c in enumerate(columns):
            ws.set_column(i, i, c.width or max(10.0, 2.2 * len(c.header) + 2))
            ws.write_string(0, i, c.header, head)
        ws.freeze_panes(1, 0)
        sums = Totals(columns)
        r = 0
        for r, row in enumerate(sums.watch(rows), start=1):
            for i, c in enumerate(columns):
                value = row.get(c.key)
                if value is None:
                    continue
                if c.kind == "money":
                    ws.write_number(r, i, int(value) / 100, money)
                elif c.kind == "int":
                    ws.write_number(r, i, int(value))
                elif c.kind == "date" and isinstance(value, dt.date):
                    ws.write_datetime(r, i, dt.datetime.combine(value, dt.time()), day)
                elif c.kind == "datetime" and isinstance(value, dt.datetime):
                    ws.write_datetime(r, i, value.replace(tzinfo=None), stamp)
                else:
                    ws.write_string(r, i, _text(value, c.kind))
        if totals:
            for i, cell in enumerate(_total_cells(columns, sums, as_text=False)):
                if columns[i].kind == "money":
                    ws.write_number(r + 1, i, cell, bold_money)
                else:
                    ws.write(r + 1, i, cell, bold)
    finally:
        book.close()
    return sums


def xlsx_chunks(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    sheet: str = "Sheet1",
    totals: bool = True,
) -> Iterator[bytes]:
    """The `.xlsx` of :func:`write_xlsx`, then read back in chunks (a zip is only complete at its end)."""
    with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as spool:
        write_xlsx(spool, columns, rows, sheet=sheet, totals=totals)  # type: ignore[arg-type]
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk


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


__all__ = [
    "CSV_MEDIA_TYPE",
    "PARQUET_MEDIA_TYPE",
    "XLSX_MEDIA_TYPE",
    "Column",
    "Totals",
    "csv_chunks",
    "parquet_chunks",
    "write_parquet",
    "write_xlsx",
    "xlsx_chunks",
]
