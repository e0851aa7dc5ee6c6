"""Lists as files: the format a caller asked for (``format=`` or ``Accept``) and its streamed response.

The rows go through ``settlement.tabular`` (the one writer); this only picks
the format and sets the media type and the file name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import StreamingResponse

from settlement.tabular import (
    CSV_MEDIA_TYPE,
    PARQUET_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    Column,
    csv_chunks,
    parquet_chunks,
    xlsx_chunks,
)

from .errors import invalid_request

Format = Literal["json", "csv", "xlsx", "parquet"]
FORMATS: tuple[Format, ...] = ("json", "csv", "xlsx", "parquet")
MEDIA: dict[str, Format] = {
    "application/json": "json",
    "text/csv": "csv",
    XLSX_MEDIA_TYPE: "xlsx",
    PARQUET_MEDIA_TYPE: "parquet",
    "application/x-parquet": "parquet",
}


def pick_format(request: Request, fmt: str | None) -> Format:
    """``format=`` when given (400 for another value), else the first known type of ``Accept``, else JSON."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise invalid_request(
                f"unknown format {fmt!r}", [{"field": "format", "message": f"one of {', '.join(FORMATS)}"}]
            )
        return fmt
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in MEDIA:
            return MEDIA[media]
    return "json"


def file_response(
    fmt: Format,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    filename: str,
    *,
    sheet: str = "Sheet1",
    totals: bool = True,
) -> StreamingResponse:
    """A streamed CSV (BOM), `.xlsx` or Parquet download named ``filename`` plus the format's extension."""
    chunks: Iterator[bytes]
    if fmt == "csv":
        chunks, media = csv_chunks(columns, rows, totals=totals), CSV_MEDIA_TYPE
    elif fmt == "xlsx":
        chunks, media = xlsx_chunks(columns, rows, sheet=sheet, totals=totals), XLSX_MEDIA_TYPE
    else:
        chunks, media = parquet_chunks(columns, rows), PARQUET_MEDIA_TYPE
    return StreamingResponse(
        chunks, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    )
