"""The one place the service calls the engine: a batch of one claim.

Nothing here computes a payment: the engine settles the claim against the
totals it is given, and this module only moves numbers between the engine's
arrays and named values (result JSON, trace, totals after, contribution).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from settlement.claims import BatchBuilder, Claim, ClaimError, PreparedClaim, prepare_claim
from settlement.engine import ClaimBatch, Tables, settle
from settlement.engine.pipeline import emergency_eligible
from settlement.engine.state import EMERGENCY_RELIEF, PersonYearTotals, one_row, read_row, totals_json
from settlement.engine.trace import render_trace
from settlement.money import format_fen
from settlement.results import claim_result, engine_error
from settlement.service.errors import claim_problem

from .models import AMOUNTS


@dataclass
class CounterClaim:
    """A claim that passed every check before the engine, with its registry identity."""

    claim: Claim
    prepared: PreparedClaim
    batch: ClaimBatch
    tables: Tables

    @property
    def person_id(self) -> str:
        """"" for an unidentified patient, who has no person-year totals (see unidentified)."""
        return self.prepared.person_id

    @property
    def unidentified(self) -> bool:
        return self.prepared.unidentified

    @cached_property
    def emergency_relief(self) -> bool:
        """Whether the emergency relief layer applies (SPEC §5.5): the claim may draw on its pool."""
        return bool(emergency_eligible(self.batch, self.tables)[0])

    @property
    def policy_year(self) -> int:
        return self.claim.visit.discharged.year

    @property
    def fund_ids(self) -> tuple[str, ...]:
        """The pools the claim may draw on: the charity funds of the schedule version in force, in the
        schedule's order (none for an unidentified patient), then the emergency relief fund's if its
        layer applies."""
        version = self.tables.schedules.versions[self.prepared.version]
        charity = () if self.unidentified else tuple(f.id for f in version.charity_funds)
        return (*charity, EMERGENCY_RELIEF) if self.emergency_relief else charity

    @property
    def schedule_id(self) -> str:
        return self.tables.schedules.versions[self.prepared.version].id


def prepare(claim: Claim, tables: Tables, scheme: str | None, category: str | None) -> CounterClaim:
    """Schedule and catalog checks (no_schedule, unknown_item) and the columnar batch of one.
    An unidentified patient has no scheme or category (the caller passes None)."""
    prepared = prepare_claim(claim, tables, scheme=scheme, category=category)
    return CounterClaim(claim, prepared, BatchBuilder().build([prepared]), tables)


@dataclass
class Computation:
    result: dict[str, Any]
    """The SPEC §6 result."""
    trace: list[dict[str, Any]]
    before: PersonYearTotals
    after: PersonYearTotals
    pools_before: dict[str, int]
    pools_after: dict[str, int]
    """Only the funds the claim is eligible for: the pools it draws on."""
    fen: dict[str, int]
    """The amounts of AMOUNTS, in fen."""
    charity_fen: dict[str, int]
    """Charity paid per eligible fund, in fen."""
    pools_bound: tuple[str, ...]
    """The eligible funds whose pool's remaining room decided the amount (the engine's clamp,
    BatchResult.charity_pool_bound / emergency_relief_pool_bound): their use must not move before
    the write (pgcounter.write)."""

    @property
    def eligible_funds(self) -> tuple[str, ...]:
        return tuple(self.pools_after)

    @property
    def contribution(self) -> PersonYearTotals:
        return self.after.minus(self.before)

    @property
    def pool_delta(self) -> dict[str, int]:
        return {f: self.pools_after[f] - self.pools_before.get(f, 0) for f in self.pools_after}

    def contribution_json(self) -> dict[str, Any]:
        c = self.contribution  # not dataclasses.asdict: it deep-copies
        person_year = {**totals_json(c), "charity_paid": dict(c.charity_paid)}
        return {"person_year": person_year, "pool_used": self.pool_delta}

    def accumulators_json(self, person_id: str, year: int) -> dict[str, Any]:
        after = self.after
        return {
            "person_id": person_id or None,  # an unidentified patient has none, nor totals of his own
            "policy_year": year,
            **totals_json(after, format_fen),
            "charity_paid": {f: format_fen(v) for f, v in after.charity_paid.items()},
            "pool_used": {f: format_fen(v) for f, v in self.pools_after.items()},
        }


def compute(cc: CounterClaim, before: PersonYearTotals, pools: dict[str, int]) -> Computation:
    """Settles the claim with the engine against these totals; 422 no_standard when none fits."""
    tables = cc.tables
    fund_ids = tables.schedules.fund_ids
    acc = one_row(before, pools, fund_ids)
    result = settle(cc.batch, tables, acc, trace=True)
    error = engine_error(result, cc.batch, 0, tables, cc.claim.claim_id)
    if error is not None:
        raise claim_problem(error)
    body = claim_result(result, cc.batch, 0, tables, cc.claim.claim_id)
    after, pools_after = read_row(result.accumulators, fund_ids)
    eligible = [
        f for f in cc.fund_ids if f == EMERGENCY_RELIEF or bool(result.charity_eligible[0, fund_ids.index(f)])
    ]
    charity_bound, relief_bound = result.charity_pool_bound, result.emergency_relief_pool_bound
    if charity_bound is None or relief_bound is None:  # pragma: no cover - settled with the trace above
        raise RuntimeError("the engine wrote no pool flags without the trace")
    bound = tuple(
        f for f in eligible
        if (relief_bound[0] if f == EMERGENCY_RELIEF else charity_bound[0, fund_ids.index(f)])
    )
    return Computation(
        result=body,
        trace=render_trace(result, cc.batch, 0, tables),
        before=before,
        after=after,
        pools_before={f: pools.get(f, 0) for f in eligible},
        pools_after={f: pools_after[f] for f in eligible},
        fen={name: int(getattr(result, name)[0]) for name in AMOUNTS},
        charity_fen={f: int(result.charity_by_fund[0, fund_ids.index(f)]) for f in eligible if f != EMERGENCY_RELIEF},
        pools_bound=bound,
    )


def ledger_amounts(comp: Computation) -> list[tuple[str, str, int]]:
    """The ledger of a settlement: one entry (layer, fund, fen) per payer, zero amounts included
    (the writers skip them). They sum to the total: the engine's invariant, checked again here."""
    amounts: list[tuple[str, str, int]] = [
        (p, p, comp.fen[p]) for p in ("basic", "critical_illness", "medical_assistance")
    ]
    amounts += [("charity", fund, fen) for fund, fen in comp.charity_fen.items()]
    amounts += [(EMERGENCY_RELIEF, EMERGENCY_RELIEF, comp.fen["emergency_relief"])]
    amounts += [
        ("backstop", "backstop", comp.fen["backstop"]),
        ("patient", "patient", comp.fen["patient_pays"]),
        ("hospital", "hospital", comp.fen["hospital_bears"]),
    ]
    total = sum(a for _, _, a in amounts)
    if total != comp.fen["total"]:  # the engine's invariant (SPEC §5.5); never write a ledger that breaks it
        raise RuntimeError(
            f"ledger of claim {comp.result['claim_id']} sums to {total}, total is {comp.fen['total']}"
        )
    return amounts


__all__ = ["ClaimError", "Computation", "CounterClaim", "compute", "ledger_amounts", "prepare"]


def warm_up(tables: Tables) -> None:
    """Settles one throw-away claim so the first real one does not pay for loading the kernel."""
    from settlement.claims import validate_claim
    from settlement.claims.person_id import CHECK, WEIGHTS

    version = tables.schedules.versions[0]
    body = "11010119800101001"
    person_id = body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]
    day = version.effective_from.isoformat()
    claim = validate_claim(
        {
            "claim_id": "warm-up",
            "hospital": {"id": "H", "level": 1},
            "patient": {"person_id": person_id},
            "visit": {"type": "inpatient", "admitted": day, "discharged": day},
            "diagnosis": {"primary": "Z00"},
            "items": [{"code": next(iter(version.catalog)), "quantity": 1, "unit_price": "1.00"}],
        },
    )
    compute(prepare(claim, tables, "resident", "none"), PersonYearTotals(), {})


def pool_limits(cc: CounterClaim) -> dict[str, int | None]:
    """The sizes of the pools the claim's schedule version has (None: unlimited)."""
    version = cc.tables.schedules.versions[cc.prepared.version]
    limits: dict[str, int | None] = {fund.id: fund.annual_pool_fen for fund in version.charity_funds}
    if version.emergency_relief is not None:
        limits[EMERGENCY_RELIEF] = version.emergency_relief.annual_pool_fen
    return limits

