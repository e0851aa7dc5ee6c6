"""Reconciliation (对账): our amounts per claim against a payer's file, line by line.

The one matching code, used by ``POST /v1/reconciliations`` (ours from the
ledger, keyed by hospital id and claim id) and by ``settlement reconcile``
(ours from a ``settlement settle`` output, keyed by claim id: results carry no
hospital id). Definitions, alike online and offline:

- a line of theirs whose key was already seen in their file is a
  ``duplicate_theirs`` (the first one is matched normally);
- ``matched``: same key, same amount to the fen; ``amount_mismatch``: same key,
  another amount; ``only_ours`` / ``only_theirs``: the key on one side only;
- ``reversed_ours``: our settlements with a reversal booked in the period
  (shown for information; each is also matched like any other key). A
  settlement settled and reversed in the period nets to zero: it is owed by
  nobody, so its absence from their file is no ``only_ours``;
- ``ours_total``: the sum of ours; ``theirs_total``: of every line of theirs,
  duplicates included; ``difference`` = theirs_total − ours_total.

Their file (read by settlement.tabular.read_table, as registry imports are): CSV (UTF-8 with or
without a BOM, or GBK/GB18030) or ``.xlsx``,
header ``hospital_id,claim_id,amount`` and an optional ``settlement_id`` (any
order); ``amount`` in yuan with at most two decimals. A bad file raises
:class:`InputDefects` with every defect and its line (the header is line 1), each a catalog
:class:`~settlement.catalog.Message`: English for the API and the command line, the page's language on a page.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from settlement.catalog import N_, Message, MessageError
from settlement.claims.models import REFUSED_CHARACTERS
from settlement.money import format_fen
from settlement.tabular import Column, TableError, cell_text, is_blank, read_table

KINDS = ("matched", "amount_mismatch", "only_ours", "only_theirs", "duplicate_theirs", "reversed_ours")
DIFFERENCES = ("amount_mismatch", "only_ours", "only_theirs", "duplicate_theirs")
KIND_LABELS = {
    "matched": "一致",
    "amount_mismatch": "金额不符",
    "only_ours": "我方有对方无",
    "only_theirs": "对方有我方无",
    "duplicate_theirs": "重复",
    "reversed_ours": "我方已撤销",
}
AMOUNT = re.compile(r"-?\d{1,15}(\.\d{1,2})?")
MAX_FIELD = 128

ITEM_COLUMNS = [
    Column("kind_label", "对账结果"),
    Column("kind", "结果代码"),
    Column("hospital_id", "医疗机构编码"),
    Column("claim_id", "结算单号"),
    Column("settlement_id", "结算ID", width=38),
    Column("ours", "我方金额", "money"),
    Column("theirs", "对方金额", "money"),
    Column("difference", "差额", "money"),
    Column("line", "对方文件行号", "int"),
]


Defects = list[tuple[int | None, Message]]


class InputDefects(Exception):
    """A file that cannot be used: every defect, each with its line (None: the file as a whole)."""

    def __init__(self, name: str, found: Defects) -> None:
        self.name = name
        self.found = found
        super().__init__("\n".join(self.defects))

    @property
    def defects(self) -> list[str]:
        """'file:line: message' (or 'file: message'), as a command line prints them."""
        return [f"{self.name}:{line}: {m}" if line is not None else f"{self.name}: {m}" for line, m in self.found]


@dataclass(frozen=True)
class Ours:
    hospital_id: str | None
    claim_id: str
    amount: int
    """Net fen for the fund in the period."""
    settlement_id: str | None = None
    reversed: bool = False
    """A reversal of it is booked in the period."""


@dataclass(frozen=True)
class Theirs:
    line: int
    hospital_id: str | None
    claim_id: str
    amount: int
    settlement_id: str | None = None


@dataclass
class Item:
    kind: str
    hospital_id: str | None
    claim_id: str
    settlement_id: str | None
    ours: int | None
    theirs: int | None
    line: int | None

    def row(self) -> dict[str, Any]:
        difference = (self.theirs or 0) - (self.ours or 0)
        return {
            "kind": self.kind,
            "kind_label": KIND_LABELS[self.kind],
            "hospital_id": self.hospital_id,
            "claim_id": self.claim_id,
            "settlement_id": self.settlement_id,
            "ours": self.ours,
            "theirs": self.theirs,
            "difference": difference,
            "line": self.line,
        }


@dataclass
class Report:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    ours_total: int = 0
    theirs_total: int = 0
    items: list[Item] = field(default_factory=list)

    @property
    def difference(self) -> int:
        return self.theirs_total - self.ours_total

    @property
    def clean(self) -> bool:
        """Everything matches: no difference of any kind, totals equal."""
        return all(self.counts[k] == 0 for k in DIFFERENCES) and self.difference == 0

    def summary(self) -> dict[str, Any]:
        """Counts as integers, money as yuan strings."""
        return {
            **{k: self.counts[k] for k in KINDS},
            "ours_total": format_fen(self.ours_total),
            "theirs_total": format_fen(self.theirs_total),
            "difference": format_fen(self.difference),
        }


def match(ours: Iterable[Ours], theirs: Iterable[Theirs], *, by_hospital: bool) -> Report:
    """The report of their lines against ours; keys (hospital id, claim id) or claim id alone."""

    def key(hospital_id: str | None, claim_id: str) -> tuple[str | None, str]:
        return (hospital_id if by_hospital else None, claim_id)

    report = Report()
    mine: dict[tuple[str | None, str], Ours] = {}
    for o in ours:
        k = key(o.hospital_id, o.claim_id)
        if k in mine:  # offline: a claim id twice in the results; its amounts add up
            prev = mine[k]
            o = Ours(o.hospital_id, o.claim_id, prev.amount + o.amount, prev.settlement_id, prev.reversed or o.reversed)
        mine[k] = o
    report.ours_total = sum(o.amount for o in mine.values())

    def add(kind: str, o: Ours | None, t: Theirs | None) -> None:
        report.counts[kind] += 1
        src = o if o is not None else t
        assert src is not None
        report.items.append(
            Item(
                kind,
                (t.hospital_id if t is not None else None) or (o.hospital_id if o is not None else None),
                src.claim_id,
                (o.settlement_id if o is not None else None) or (t.settlement_id if t is not None else None),
                o.amount if o is not None else None,
                t.amount if t is not None else None,
                t.line if t is not None else None,
            )
        )

    seen: set[tuple[str | None, str]] = set()
    for t in theirs:
        report.theirs_total += t.amount
        k = key(t.hospital_id, t.claim_id)
        if k in seen:
            add("duplicate_theirs", mine.get(k), t)
            continue
        seen.add(k)
        found = mine.get(k)
        if found is None:
            add("only_theirs", None, t)
        elif found.amount == t.amount:
            add("matched", found, t)
        else:
            add("amount_mismatch", found, t)
    for k, o in mine.items():
        if k not in seen and o.amount != 0:
            add("only_ours", o, None)
    for o in mine.values():
        if o.reversed:
            add("reversed_ours", o, None)
    return report


# -- their file ---------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_amount(text: str) -> int:
    """Yuan with at most two decimals (a sign allowed) → fen; MessageError (a ValueError) otherwise."""
    text = text.strip()
    if not AMOUNT.fullmatch(text):
        raise MessageError(N_("not an amount in yuan with at most two decimals: %(text)s"), text=repr(text))
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation:
        raise MessageError(N_("not an amount: %(text)s"), text=repr(text)) from None


def read_theirs(data: bytes, name: str, *, need_hospital: bool) -> list[Theirs]:
    """Their lines, or InputDefects listing every defect with its line (read by settlement.tabular)."""
    defects: Defects = []
    out: list[Theirs] = []
    required = ("hospital_id", "claim_id", "amount") if need_hospital else ("claim_id", "amount")
    allowed = {"hospital_id", "claim_id", "amount", "settlement_id"}
    try:
        table = read_table(data, name)
        first = table.header()
        if first is None:
            raise InputDefects(name, [(None, Message(N_("empty file (expected a header %(columns)s)"),
                                                     {"columns": ",".join(required)}))])
        number, header = first
        header = [c.lower() for c in header]
        for column in header:
            if column not in allowed:
                defects.append((number, Message(N_("unknown column %(column)s (allowed: %(allowed)s)"),
                                                {"column": repr(column), "allowed": ", ".join(sorted(allowed))})))
        for column in required:
            if column not in header:
                defects.append((number, Message(N_("missing column %(column)s"), {"column": repr(column)})))
        if len(set(header)) != len(header):
            defects.append((number, Message(N_("a column is named twice"))))
        if defects:
            raise InputDefects(name, defects)
        for number, cells in table.rows:
            if is_blank(cells):
                continue
            values = [cell_text(c) for c in cells]
            while len(values) > len(header) and values[-1] == "":
                values.pop()
            if len(values) != len(header):
                defects.append((number, Message(N_("%(count)s fields, the header has %(columns)s"),
                                                {"count": len(values), "columns": len(header)})))
                continue
            theirs = _their_line(number, dict(zip(header, values, strict=True)), required, defects)
            if theirs is not None:
                out.append(theirs)
    except TableError as exc:
        raise InputDefects(name, [*defects, (None, exc.message)]) from None
    if defects:
        raise InputDefects(name, defects)
    return out


def _their_line(
    number: int, row: dict[str, str], required: tuple[str, ...], defects: Defects
) -> Theirs | None:
    bad = False
    for column in ("hospital_id", "claim_id", "settlement_id"):
        value = row.get(column)
        if value is None:
            continue
        if column in required and not value:
            defects.append((number, Message(N_("%(column)s: empty"), {"column": column})))
            bad = True
        elif len(value) > MAX_FIELD:
            defects.append((number, Message(N_("%(column)s: longer than %(max)s characters"),
                                            {"column": column, "max": MAX_FIELD})))
            bad = True
        elif (found := REFUSED_CHARACTERS.search(value)) is not None:  # a NUL, a control or bidi character
            defects.append((number, Message(N_("%(column)s: holds the character U+%(code)s, which is not allowed"),
                                            {"column": column, "code": f"{ord(found.group()):04X}"})))
            bad = True
    try:
        amount = parse_amount(row["amount"])
    except MessageError as exc:
        defects.append((number, Message(N_("amount: %(problem)s"), {"problem": exc.message})))
        bad = True
    if bad:
        return None
    return Theirs(number, row.get("hospital_id") or None, row["claim_id"], amount, row.get("settlement_id") or None)


# -- offline: ours from a `settlement settle` output --------------------------


def ours_from_results(lines: Iterable[bytes], fund: str, name: str) -> list[Ours]:
    """Every result line whose amount for `fund` (a layer of ``payments`` or a charity fund id) is not zero;
    error lines skipped. InputDefects for a line that is not a result, or a fund no line knows."""
    out: list[Ours] = []
    defects: Defects = []
    known: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            if "error" in obj:
                continue
            payments, by_fund = obj["payments"], obj.get("charity_by_fund") or {}
            known.update(payments, by_fund)
            value = payments.get(fund, by_fund.get(fund))
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"the amount of {fund} is not a string of yuan")
            amount = parse_amount(value)
            claim_id = obj["claim_id"]
            if not isinstance(claim_id, str):
                raise ValueError("claim_id is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            problem = exc.message if isinstance(exc, MessageError) else str(exc)
            defects.append((number, Message(N_("not a settle result line (%(problem)s)"), {"problem": problem})))
            continue
        if amount:
            out.append(Ours(None, claim_id, amount))
    if not defects and fund not in known and known:
        defects.append((None, Message(N_("no result pays fund %(fund)s; the results know: %(known)s"),
                                      {"fund": repr(fund), "known": ", ".join(sorted(known))})))
    if defects:
        raise InputDefects(name, defects)
    return out


__all__ = [
    "DIFFERENCES",
    "ITEM_COLUMNS",
    "KINDS",
    "InputDefects",
    "Item",
    "Ours",
    "Report",
    "Theirs",
    "match",
    "ours_from_results",
    "parse_amount",
    "read_theirs",
    "sha256",
]
