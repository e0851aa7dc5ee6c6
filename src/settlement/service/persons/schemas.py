"""Registry requests and responses.

The checks' messages are catalog messages (catalog.MessageError): the API gives their English
text, the pages say them in the reader's language."""

from __future__ import annotations

import datetime as dt
import itertools
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from settlement.catalog import N_, MessageError
from settlement.claims.models import Category, Scheme  # the six categories and two schemes of SPEC §3
from settlement.service.strict import JsonDate

# the first two digits of a 行政区划代码 (GB/T 2260): the provinces, plus 71 台湾, 81 香港, 82 澳门
PROVINCES = frozenset(str(code) for code in (
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
))
NAME_MAX = 100
OVERLAP = N_("category periods %(a)s and %(b)s overlap")
"""PersonIn's message for two overlapping periods (their indexes from 0)."""


def check_district(value: str) -> str:
    """A 6-digit 行政区划代码 of a real province; MessageError (a ValueError) naming what is wrong."""
    if len(value) != 6 or not value.isascii() or not value.isdigit():
        raise MessageError(N_("district must be a 6-digit 行政区划代码 such as 230102, got %(value)s"),
                           value=repr(value))
    if value[:2] not in PROVINCES:
        raise MessageError(N_("district %(value)s: %(province)s is not a province code"), value=value,
                           province=value[:2])
    return value


def check_district_prefix(value: str) -> str:
    """A district filter: 2, 4 or 6 digits of a 行政区划代码 (province, city, county)."""
    if len(value) not in (2, 4, 6) or not value.isascii() or not value.isdigit():
        raise MessageError(N_("district must be 2, 4 or 6 digits of a 行政区划代码, got %(value)s"),
                           value=repr(value))
    return value


def check_name(value: str) -> str:
    """A person's name, trimmed: not blank, at most 100 characters, no control or bidi characters."""
    value = value.strip()
    if not value:
        raise MessageError(N_("name is blank (leave it out instead)"))
    if len(value) > NAME_MAX:
        raise MessageError(N_("name is longer than %(max)s characters"), max=NAME_MAX)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise MessageError(N_("name contains control or direction-formatting characters"))
    return value


District = Annotated[str, AfterValidator(check_district)]
Name = Annotated[str, AfterValidator(check_name)]


class CategoryPeriod(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    valid_from: JsonDate
    valid_to: JsonDate | None = Field(None, description="inclusive; null: open-ended")

    @model_validator(mode="after")
    def _ordered(self) -> CategoryPeriod:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise MessageError(N_("valid_to is before valid_from"))
        return self


def overlaps(periods: list[CategoryPeriod]) -> list[tuple[int, int]]:
    """Index pairs (i, j) of periods that overlap (both ends inclusive)."""
    order = sorted(range(len(periods)), key=lambda i: periods[i].valid_from)
    found = []
    for a, b in itertools.pairwise(order):
        end = periods[a].valid_to
        if end is None or end >= periods[b].valid_from:
            found.append((a, b))
    return found


class PersonIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "scheme": "resident",
                "name": "张三",
                "district": "230102",
                "categories": [
                    {"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": None}
                ],
            }
        },
    )

    scheme: Scheme
    categories: list[CategoryPeriod] = Field(min_length=1, max_length=200)
    name: Name | None = Field(None, description="姓名; shown to reviewer and admin keys only")
    district: District | None = Field(None, description="行政区划代码 (6 digits) the person is registered in")

    @model_validator(mode="after")
    def _no_overlap(self) -> PersonIn:
        clashes = overlaps(self.categories)
        if clashes:
            a, b = clashes[0]
            raise MessageError(OVERLAP, a=a, b=b)
        return self


class _PersonHead(BaseModel):
    person_id: str
    scheme: Scheme
    name: str | None = Field(description="姓名; always null for insurer keys")
    district: str | None


class PersonOut(_PersonHead):
    categories: list[CategoryPeriod]
    created_at: dt.datetime
    updated_at: dt.datetime


class ImportProblem(BaseModel):
    line: int | None = Field(description="the file's line (CSV) or row (xlsx), 1 being the header; null: the file")
    column: str = Field(description="the column as the file's header names it; empty for the row or the file")
    field: str = Field(description="person_id, scheme, …; (header), (row) or (file)")
    message: str


class ImportOut(BaseModel):
    """What an import found (dry run) or did."""

    ok: bool = Field(description="no problem found")
    dry_run: bool
    committed: bool = Field(description="the entries were written (never with a problem)")
    filename: str | None
    format: Literal["csv", "xlsx"] | None
    encoding: Literal["utf-8", "utf-8-sig", "gb18030"] | None = Field(
        description="CSV: how the file was read (utf-8-sig: UTF-8 with a BOM; gb18030 covers GBK)"
    )
    sheet: str | None = Field(description="xlsx: the sheet read (the first)")
    columns: dict[str, str] = Field(description="field -> the header the file gives it")
    rows: int = Field(description="data rows read (blank rows skipped)")
    persons: int
    periods: int
    new: int
    changed: int
    unchanged: int
    problems: list[ImportProblem]
    problems_total: int = Field(description="all problems; at most 5000 are listed")


class AccumulatorsOut(BaseModel):
    person_id: str
    policy_year: int
    basic_paid: dict[str, str]
    critical_base: str
    critical_paid: str
    assistance_base: str
    assistance_paid: str
    charity_paid: dict[str, str]


class HistoryEntry(BaseModel):
    """One change to a person's entry; snapshots are {scheme, name, district, categories}."""

    id: int
    changed_at: dt.datetime
    actor: str = Field(description="the staff username, else the API key id; 'cli' for the command line")
    source: Literal["put", "import"]
    changed: list[Literal["scheme", "name", "district", "categories"]]
    before: dict[str, Any] | None = Field(description="null when this change registered the person")
    after: dict[str, Any]


class HistoryOut(BaseModel):
    person_id: str
    items: list[HistoryEntry] = Field(description="oldest first")


class PersonListItem(_PersonHead):
    category: Category | None = Field(description="the category in force on the day asked (default today)")
    updated_at: dt.datetime


class PersonPage(BaseModel):
    items: list[PersonListItem]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


DistrictPrefix = Annotated[str, AfterValidator(check_district_prefix)]


class CapRowOut(BaseModel):
    layer: Literal["basic", "critical_illness", "medical_assistance", "charity"]
    visit_type: str | None
    fund: str | None
    fund_name: str | None
    paid: str
    cap: str | None = Field(description="yuan; null: no cap")
    remaining: str | None = Field(description="max(0, cap − paid); null: no cap")
    applies: bool = Field(description="whether the layer pays for this scheme and category at all")


class PositionOut(BaseModel):
    person_id: str
    policy_year: int
    on: dt.date = Field(description="the day scheme, category and schedule version are taken on")
    schedule_version: str
    scheme: Scheme
    category: Category | None
    critical_base: str
    assistance_base: str
    rows: list[CapRowOut]
