"""What a fund-limited insurer key sees of settlements: those its funds paid, and only their amounts.

An insurer key limited to funds (``settlement keys create --role insurer
--funds basic``) reads a settlement only when one of its funds has a
``settled`` ledger entry in it (a payment that is not zero: zero amounts are
not written), and in what it reads every other payer's amount is null: the
payments of the layers it does not hold, the other charity funds, the
patient's and hospital's shares unless it holds ``patient`` / ``hospital``,
the running totals of other funds; the trace (which states every layer's
amount) is left out. Every other key sees the whole settlement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.sql.elements import ColumnElement

from settlement.engine.totals import FIELD_LAYERS

from .models import LedgerEntry, Settlement

LAYERS = ("basic", "critical_illness", "medical_assistance", "emergency_relief", "backstop")
ACCUMULATOR_FUND = FIELD_LAYERS
"""A person-year total of accumulators_after -> the layer a fund-limited key must hold to see it."""


def paid_by(funds: frozenset[str]) -> ColumnElement[bool]:
    """The settlements one of these funds paid (a settled ledger entry of the fund)."""
    return exists(
        select(LedgerEntry.id).where(
            LedgerEntry.settlement_seq == Settlement.seq,
            LedgerEntry.kind == "settled",
            LedgerEntry.fund.in_(sorted(funds)),
        )
    )


def funds_view(body: dict[str, Any], funds: frozenset[str] | None) -> dict[str, Any]:
    """The settlement body as a key limited to ``funds`` sees it (None: not limited, all of it)."""
    if funds is None:
        return body
    out = dict(body)
    payments = dict(body["payments"])
    charity = body.get("charity_by_fund") or {}
    for layer in LAYERS:
        if layer not in funds:
            payments[layer] = None
    if not set(charity) <= funds:
        payments["charity"] = None
    out["payments"] = payments
    out["charity_by_fund"] = {f: v for f, v in charity.items() if f in funds}
    for share, fund in (("patient_pays", "patient"), ("hospital_bears", "hospital")):
        if fund not in funds:
            out[share] = None
    if "trace" in out:
        out["trace"] = []
    after = body.get("accumulators_after")
    if isinstance(after, dict):
        seen: dict[str, Any] = {}
        for key, value in after.items():
            if key in ("charity_paid", "pool_used") and isinstance(value, dict):
                seen[key] = {f: v for f, v in value.items() if f in funds}
            elif key not in ACCUMULATOR_FUND or ACCUMULATOR_FUND[key] in funds:
                seen[key] = value
        out["accumulators_after"] = seen
    return out
