"""Registry imports from the files clerks have: CSV (UTF-8 with or without BOM, or GBK/GB18030)
and Excel ``.xlsx``, with code or Chinese headers and values; a dry run, then all or nothing.

The file is read into rows of cells by settlement.tabular.read_table (the reader of reconciliation
files too), each cell checked against its column
(every problem of every row is reported, with its line and the column as the
file names it), the rows of one person gathered into one entry (the same
scheme, name and district; periods that do not overlap), and the entries
compared with the registry. A dry run stops there; a commit then writes the
entries and their history records through ``repository.replace_many`` in
the caller's transaction — any problem, nothing is written.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import field as dataclass_field  # Problem has a field named field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from settlement.catalog import N_, Message, MessageError
from settlement.claims.person_id import PersonIdError, check_person_id, normalize_person_id
from settlement.service.auth.service import Principal
from settlement.service.errors import ServiceError
from settlement.tabular import Table, TableError, cell_text, is_blank, read_table

from .repository import KEEP, Entry, replace_many, snapshot, stored_snapshots
from .schemas import CategoryPeriod, check_district, check_name, overlaps

if TYPE_CHECKING:
    from settlement.service.context import ServiceContext

FIELDS = ("person_id", "scheme", "category", "valid_from", "valid_to", "name", "district")
REQUIRED = ("person_id", "scheme", "category", "valid_from")

# header spellings (compared without spaces, case, a leading * and a trailing (…) note)
HEADERS: dict[str, tuple[str, ...]] = {
    "person_id": ("公民身份号码", "身份证号", "身份证号码", "公民身份证号", "公民身份证号码", "证件号码",
                  "身份证件号码"),
    "scheme": ("参保类型", "险种", "险种类型", "参保险种", "医保类型"),
    "category": ("救助对象类别", "对象类别", "救助类别", "人员类别", "救助对象类型"),
    "valid_from": ("开始日期", "起始日期", "生效日期", "有效期起", "有效期开始日期"),
    "valid_to": ("结束日期", "终止日期", "截止日期", "失效日期", "有效期止", "有效期结束日期"),
    "name": ("姓名",),
    "district": ("行政区划代码", "行政区划", "区划代码", "所属区划代码"),
}
IGNORED_HEADERS = ("序号", "备注")
"""Columns clerks' sheets commonly carry that the registry does not keep: read past, not errors."""

SCHEMES: dict[str, tuple[str, ...]] = {
    "resident": ("城乡居民", "城乡居民基本医疗保险", "城乡居民医保", "居民医保", "城乡居民医疗保险", "居民"),
    "employee": ("城镇职工", "城镇职工基本医疗保险", "职工医保", "城镇职工医保", "职工基本医疗保险", "职工"),
}
CATEGORIES: dict[str, tuple[str, ...]] = {
    "none": ("普通", "无", "普通参保人员", "普通人员"),
    "extreme_poverty": ("特困", "特困供养人员", "特困人员", "特困供养"),
    "subsistence_allowance": ("低保", "最低生活保障对象", "低保对象", "最低生活保障"),
    "registered_poor": ("建档立卡", "建档立卡贫困人口", "建档立卡贫困户", "建档立卡户"),
    "low_income": ("低收入", "低收入家庭成员", "低收入人口"),
    "illness_impoverished": ("因病致贫", "因病致贫家庭成员"),
}
PROBLEMS_MAX = 5000
"""At most this many problems are listed (problems_total counts them all)."""

_NOTE = re.compile(r"[(（][^()（）]*[)）]$")


def _m(message_id: str, **values: Any) -> Message:
    return Message(message_id, values)


def _key(text: str) -> str:
    """A header or label compared loosely: no spaces, BOM or required-marker, lower case, no (…) note."""
    text = "".join(text.replace("\ufeff", "").split()).lstrip("*＊").lower()
    return _NOTE.sub("", text) or text


def _lookup(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {_key(alias): code for code, aliases in table.items() for alias in (code, *aliases)}


HEADER_OF = _lookup(HEADERS)
SCHEME_OF = _lookup(SCHEMES)
CATEGORY_OF = _lookup(CATEGORIES)


@dataclass(frozen=True)
class Problem:
    """What is wrong where: line (None: the whole file; 1: the header), column as the file names it."""

    line: int | None
    column: str
    field: str
    message: str
    """English (the API's); ``text`` is the same as a catalog message, for the pages."""
    text: Message | None = dataclass_field(default=None, compare=False, repr=False)

    def public(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "field": self.field, "message": self.message}


@dataclass
class ImportReport:
    """What an import found (dry run) or did (commit). ``ok``: no problem; ``committed``: written."""

    filename: str | None
    format: str | None = None
    """'csv' or 'xlsx'."""
    encoding: str | None = None
    """CSV only: 'utf-8', 'utf-8-sig' (UTF-8 with BOM) or 'gb18030' (GBK files are GB18030)."""
    sheet: str | None = None
    """xlsx only: the sheet read (the first)."""
    columns: dict[str, str] = field(default_factory=dict)
    """field -> the header the file gives it."""
    rows: int = 0
    persons: int = 0
    periods: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    dry_run: bool = True
    committed: bool = False

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    def add(self, line: int | None, column: str, field: str, message: Message) -> None:
        self.problems_total += 1
        if len(self.problems) < PROBLEMS_MAX:
            self.problems.append(Problem(line, column, field, str(message), message))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = [p.public() for p in self.problems]
        out["ok"] = self.ok
        return out


class ImportRejected(ServiceError):
    """422 invalid_import: the file has problems; nothing was written. ``report`` says which."""

    def __init__(self, report: ImportReport) -> None:
        problems = sorted(report.problems, key=lambda p: (p.line or 0))
        super().__init__(
            422,
            "invalid_import",
            f"{report.problems_total} problem(s) in {report.filename or 'the file'}; nothing was imported",
            errors=[p.public() for p in problems],
        )
        self.report = report


# -- cells ---------------------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]0{1,2}:00(?::00)?)?$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


class CellProblem(MessageError):
    """A cell's problem, a catalog message: what follows the column's title, or a whole sentence whose
    value ``column_value`` names the column (the person id's messages: ``subject``)."""

    def __init__(self, message_id: str, *, column_value: str = "", **values: Any) -> None:
        super().__init__(message_id, **values)
        self.column_value = column_value

    def located(self, column: str) -> Message:
        """The problem as the report says it, naming the column by its title in the file."""
        if self.column_value:
            return Message(self.message.id, {**self.message.values, self.column_value: column})
        return Message(N_("%(column)s %(problem)s"), {"column": column, "problem": self.message})


def _text(value: Any) -> str:
    """A cell as text (tabular.cell_text): numbers without a spurious .0; dates are not text."""
    if isinstance(value, bool):
        raise CellProblem(N_("is TRUE/FALSE, not text"))
    if isinstance(value, float) and not value.is_integer():
        raise CellProblem(N_("is the number %(value)s, not text"), value=value)
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        raise CellProblem(N_("is a date, not text"))
    return cell_text(value)


def cell_date(value: Any) -> dt.date | None:
    """A date cell (Excel date) or date text: 2018-01-01, 2018/1/1, 2018.1.1, 2018年1月1日, 20180101."""
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0):
            raise CellProblem(N_("is %(value)s, a date with a time of day"), value=value.isoformat(sep=" "))
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, float | int) and not isinstance(value, bool):
        if float(value).is_integer() and 19000101 <= value <= 99991231:
            value = str(int(value))
        else:
            raise CellProblem(
                N_("is the number %(value)s, not a date: format the cell as a date (yyyy-mm-dd)"), value=value
            )
    text = _text(value)
    if not text:
        return None
    found = _DATE.match(text) or _COMPACT_DATE.match(text)
    if found is None:
        raise CellProblem(N_("%(text)s is not a date (write 2018-01-01)"), text=repr(text))
    try:
        return dt.date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        raise CellProblem(N_("%(text)s is not a real date"), text=repr(text)) from None


def cell_person_id(value: Any) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        raise CellProblem(N_(
            "is stored as a number, and Excel keeps only 15 digits of a number:"
            " format the column as text and enter the ids again"
        ))
    text = _text(value)
    if not text:
        raise CellProblem(N_("is empty"))
    try:
        check_person_id(text, dt.date.max)
    except PersonIdError as exc:
        raise CellProblem(exc.message.id, column_value="subject", **exc.message.values) from None
    return normalize_person_id(text)


def _label(value: Any, table: dict[str, str], what: str, choices: dict[str, tuple[str, ...]]) -> str:
    text = _text(value)
    if not text:
        raise CellProblem(N_("is empty"))
    code = table.get(_key(text))
    if code is None:
        known = "; ".join(f"{c} ({aliases[0]})" for c, aliases in choices.items())
        raise CellProblem(
            N_("unknown %(what)s %(text)s; one of: %(known)s"), what=_m(what), text=repr(text), known=known
        )
    return code


def _optional(check: Callable[[str], str]) -> Callable[[Any], str | None]:
    """A cell of an optional column, checked as the API checks the field (schemas); None when empty."""

    def cell(value: Any) -> str | None:
        text = _text(value)
        if not text:
            return None
        try:
            return check(text)
        except MessageError as exc:
            raise CellProblem(exc.message.id, **exc.message.values) from None

    return cell


cell_district = _optional(check_district)
cell_name = _optional(check_name)


# -- rows to entries -----------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    scheme: str
    period: CategoryPeriod
    name: str | None
    district: str | None


@dataclass
class Parsed:
    """The file's entries by person (only persons all of whose rows are good), and their first lines."""

    entries: dict[str, Entry] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    has_name: bool = False
    has_district: bool = False


def _columns(line: int, header: list[str], report: ImportReport) -> dict[str, int] | None:
    """field -> index of its column; None (with problems) when the header will not do."""
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        if not title.replace("\ufeff", ""):
            continue
        code = HEADER_OF.get(_key(title))
        if code is None:
            if _key(title) in IGNORED_HEADERS:
                continue
            report.add(line, title, "(header)", _m(N_("unknown column %(title)s; the columns are %(columns)s"),
                       title=repr(title), columns=", ".join(f"{f} ({HEADERS[f][0]})" for f in FIELDS)))
        elif code in columns:
            report.add(line, title, "(header)", _m(N_("column %(title)s repeats %(other)s (%(code)s)"),
                                                title=repr(title), other=repr(report.columns[code]), code=code))
        else:
            columns[code] = index
            report.columns[code] = title
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        report.add(line, "", "(header)", _m(N_("the header must name the columns %(columns)s"),
                                         columns=", ".join(f"{f} ({HEADERS[f][0]})" for f in missing)))
    return None if report.problems_total else columns


def parse(sheet: Table, report: ImportReport) -> Parsed:
    """Checks every row (every problem goes to the report) and gathers the rows of each person."""
    parsed = Parsed()
    first = sheet.header()
    if first is None:
        report.add(None, "", "(file)", _m(N_("the file is empty")))
        return parsed
    columns = _columns(*first, report)
    if columns is None:
        return parsed
    parsed.has_name, parsed.has_district = "name" in columns, "district" in columns
    width = max(columns.values()) + 1
    by_person: dict[str, list[_Row]] = {}
    checks = {
        "person_id": cell_person_id,
        "scheme": lambda v: _label(v, SCHEME_OF, N_("scheme"), SCHEMES),
        "category": lambda v: _label(v, CATEGORY_OF, N_("category"), CATEGORIES),
        "valid_from": cell_date,
        "valid_to": cell_date,
        "name": cell_name,
        "district": cell_district,
    }
    for line, cells in sheet.rows:
        if is_blank(cells):
            continue
        report.rows += 1
        if sheet.format == "csv" and len(cells) < width:
            report.add(line, "", "(row)", _m(N_("expected %(expected)s fields, got %(got)s"),
                                             expected=len(first[1]), got=len(cells)))
            continue
        values: dict[str, Any] = {}
        bad = False
        for code, index in columns.items():
            try:
                values[code] = checks[code](cells[index] if index < len(cells) else None)
            except CellProblem as exc:
                report.add(line, report.columns[code], code, exc.located(report.columns[code]))
                bad = True
        if not bad and values["valid_from"] is None:
            report.add(line, report.columns["valid_from"], "valid_from", _m(
                N_("%(column)s %(problem)s"), column=report.columns["valid_from"], problem=_m(N_("is empty"))))
            bad = True
        if bad:
            continue
        pid = values["person_id"]
        period = CategoryPeriod.model_construct(
            category=values["category"], valid_from=values["valid_from"], valid_to=values.get("valid_to")
        )
        if period.valid_to is not None and period.valid_to < period.valid_from:
            report.add(line, report.columns["valid_to"], "valid_to",
                       _m(N_("%(column)s %(date)s is before %(start)s"), column=report.columns["valid_to"],
                          date=period.valid_to, start=period.valid_from))
            continue
        birth = dt.date(int(pid[6:10]), int(pid[10:12]), int(pid[12:14]))  # checked by cell_person_id
        if period.valid_from < birth:
            report.add(line, report.columns["valid_from"], "valid_from",
                       _m(N_("%(column)s %(date)s is before the person's birth on %(birth)s"),
                          column=report.columns["valid_from"], date=period.valid_from, birth=birth))
            continue
        by_person.setdefault(pid, []).append(
            _Row(line, values["scheme"], period, values.get("name"), values.get("district"))
        )
        report.periods += 1
    for pid, rows in by_person.items():
        entry = _entry(pid, rows, parsed, report)
        if entry is not None:
            parsed.entries[pid] = entry
            parsed.lines[pid] = rows[0].line
    return parsed


def _entry(pid: str, rows: list[_Row], parsed: Parsed, report: ImportReport) -> Entry | None:
    """The rows of one person as one entry; None (with a problem) when they disagree."""
    for attr in ("scheme", "name", "district"):
        seen: dict[str, int] = {}
        for row in rows:
            value = getattr(row, attr)
            if value is not None:
                seen.setdefault(value, row.line)
        if len(seen) > 1:
            (a, line_a), (b, line_b) = sorted(seen.items(), key=lambda kv: kv[1])[:2]
            column = report.columns.get(attr, attr)
            report.add(line_b, column, attr, _m(
                N_("person %(pid)s: %(column)s %(b)s differs from %(a)s on line %(line)s"),
                pid=pid, column=column, b=repr(b), a=repr(a), line=line_a,
            ))
            return None
    periods = [r.period for r in rows]
    clashes = overlaps(periods)
    if clashes:
        i, j = clashes[0]
        report.add(rows[j].line, report.columns["valid_from"], "valid_from",
                   _m(N_("person %(pid)s: the period overlaps the one on line %(line)s"), pid=pid, line=rows[i].line))
        return None

    def one(attr: str) -> str | None:
        return next((getattr(r, attr) for r in rows if getattr(r, attr) is not None), None)

    return Entry(
        rows[0].scheme,
        [(p.category, p.valid_from, p.valid_to) for p in periods],
        one("name") if parsed.has_name else KEEP,
        one("district") if parsed.has_district else KEEP,
    )


# -- against the registry ------------------------------------------------------------------------


def _compare(session: Session, principal: Principal, parsed: Parsed, report: ImportReport) -> None:
    """Counts new, changed and unchanged persons; a scoped reviewer's persons must stay in the district."""
    ids = sorted(parsed.entries)
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        stored = stored_snapshots(session, part, lock=False)
        for pid in part:
            entry, old = parsed.entries[pid], stored.get(pid)
            name = (old or {}).get("name") if entry.name is KEEP else entry.name
            district = (old or {}).get("district") if entry.district is KEEP else entry.district
            line = parsed.lines[pid]
            if principal.district is not None:
                column = report.columns.get("district", "district")
                if old is not None and not principal.sees_district(old["district"]):
                    report.add(line, report.columns["person_id"], "person_id",
                               _m(N_("person %(pid)s is not in district %(district)s's registry"), pid=pid,
                                  district=principal.district))
                    continue
                if not principal.sees_district(district):  # type: ignore[arg-type]
                    report.add(line, column, "district",
                               _m(N_("person %(pid)s: district %(district)s is outside %(scope)s"), pid=pid,
                                  district=district or "(none)", scope=principal.district))
                    continue
            after = snapshot(entry.scheme, name, district, entry.periods)  # type: ignore[arg-type]
            if old is None:
                report.new += 1
            elif old == after:
                report.unchanged += 1
            else:
                report.changed += 1


def _check(
    session: Session, principal: Principal, data: bytes, filename: str | None
) -> tuple[ImportReport, Parsed]:
    report = ImportReport(filename=filename)
    try:
        sheet = read_table(data, filename)
        report.format, report.encoding, report.sheet = sheet.format, sheet.encoding, sheet.sheet
        parsed = parse(sheet, report)
    except TableError as exc:
        report.add(None, "", "(file)", exc.message)
        return report, Parsed()
    report.persons = len(parsed.entries)
    if not report.problems_total and not parsed.entries:
        report.add(None, "", "(file)", _m(N_("the file holds no rows")))
    _compare(session, principal, parsed, report)  # the good persons' counts, even beside problems
    return report, parsed


def import_check(
    session: Session, ctx: ServiceContext | None, principal: Principal, data: bytes, filename: str | None
) -> ImportReport:
    """A dry run: every row checked, the registry compared, nothing written."""
    report, _ = _check(session, principal, data, filename)
    return report


def import_commit(
    session: Session, ctx: ServiceContext | None, principal: Principal, data: bytes, filename: str | None
) -> ImportReport:
    """Checks the file as the dry run does, then writes every entry with its history, or nothing.

    Raises ImportRejected (422 invalid_import, with the report) on any problem.
    Writes in the caller's transaction (callers commit; run_transaction retries
    a deadlock). A person moved out of a scoped reviewer's district between the
    check and the write is refused under the row lock (404).
    """
    report, parsed = _check(session, principal, data, filename)
    report.dry_run = False
    if not report.ok:
        raise ImportRejected(report)
    now = ctx.now() if ctx is not None else dt.datetime.now(dt.UTC)
    changed, new = replace_many(
        session, parsed.entries, principal.key_id, principal.actor, now, allowed=principal.sees_district
    )
    report.changed, report.new = changed - new, new
    report.unchanged = report.persons - changed
    report.committed = True
    return report

