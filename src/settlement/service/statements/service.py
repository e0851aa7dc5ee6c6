"""A day's settled and reversed totals per hospital and fund.

The day of a ledger entry is the date of its event in the service's time
zone (SETTLEMENT_TIMEZONE, default Asia/Shanghai): a reversal counts on the
day it was made, whatever the day of the settlement it reverses.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from settlement.money import format_fen
from settlement.service.auth.service import Principal
from settlement.service.settlements.models import LedgerEntry

CSV_COLUMNS = (
    "date",
    "hospital_id",
    "layer",
    "fund",
    "settled",
    "reversed",
    "net",
    "settled_count",
    "reversed_count",
)


def daily(
    session: Session, principal: Principal, day: dt.date, fund: str | None
) -> list[dict[str, Any]]:
    settled = LedgerEntry.kind == "settled"
    reversed_ = LedgerEntry.kind == "reversed"
    query = (
        select(
            LedgerEntry.hospital_id,
            LedgerEntry.layer,
            LedgerEntry.fund,
            func.coalesce(func.sum(case((settled, LedgerEntry.amount_fen), else_=0)), 0),
            func.coalesce(func.sum(case((reversed_, -LedgerEntry.amount_fen), else_=0)), 0),
            func.count(distinct(case((settled, LedgerEntry.settlement_seq)))),
            func.count(distinct(case((reversed_, LedgerEntry.settlement_seq)))),
        )
        .where(LedgerEntry.business_date == day)
        .group_by(LedgerEntry.hospital_id, LedgerEntry.layer, LedgerEntry.fund)
        .order_by(LedgerEntry.hospital_id, LedgerEntry.layer, LedgerEntry.fund)
    )
    if fund is not None:
        query = query.where(LedgerEntry.fund == fund)
    if principal.funds is not None:
        query = query.where(LedgerEntry.fund.in_(sorted(principal.funds)))
    rows = []
    for (
        hospital_id,
        layer,
        fund_id,
        settled_fen,
        reversed_fen,
        n_settled,
        n_reversed,
    ) in session.execute(query):
        rows.append(
            {
                "date": day.isoformat(),
                "hospital_id": hospital_id,
                "layer": layer,
                "fund": fund_id,
                "settled": format_fen(int(settled_fen)),
                "reversed": format_fen(int(reversed_fen)),
                "net": format_fen(int(settled_fen) - int(reversed_fen)),
                "settled_count": int(n_settled),
                "reversed_count": int(n_reversed),
            }
        )
    return rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
