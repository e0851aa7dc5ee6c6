"""Engine results as the JSON of SPEC §6 (money as two-decimal yuan strings)."""

from __future__ import annotations

from typing import Any

from settlement.claims.parse import NO_STANDARD, ClaimError
from settlement.engine.batch import BatchResult, ClaimBatch
from settlement.engine.tables import Tables
from settlement.money import format_fen


def error_result(error: ClaimError) -> dict[str, Any]:
    return {"claim_id": error.claim_id, "error": {"code": error.code, "message": error.message}}


def engine_error(result: BatchResult, batch: ClaimBatch, i: int, tables: Tables, claim_id: str) -> ClaimError | None:
    """The engine's own error for claim i (no_standard), or None."""
    if result.error[i] == 0:
        return None
    sd = tables.schedules.versions[int(batch.version[i])].single_disease
    assert sd is not None
    group = sd.groups[int(result.group[i])]
    t = int(batch.treatment[i])
    treatment = batch.treatment_values[t] if t >= 0 else None
    return ClaimError(
        NO_STANDARD, f"no fixed standard for treatment {treatment!r} in group {group.id}", claim_id
    )


def claim_result(result: BatchResult, batch: ClaimBatch, i: int, tables: Tables, claim_id: str) -> dict[str, Any]:
    """The §6 result object of claim i, or its error object."""
    error = engine_error(result, batch, i, tables, claim_id)
    if error is not None:
        return error_result(error)
    schedule = tables.schedules.versions[int(batch.version[i])]
    group = int(result.group[i])
    sd = schedule.single_disease
    fund_ids = tables.schedules.fund_ids
    by_fund = {}
    for fund in schedule.charity_funds:
        col = fund_ids.index(fund.id)
        if result.charity_eligible[i, col]:
            by_fund[fund.id] = format_fen(int(result.charity_by_fund[i, col]))
    return {
        "claim_id": claim_id,
        "schedule": schedule.id,
        "policy_year": int(batch.policy_year[i]),
        "pathway": "single_disease" if result.pathway_fixed[i] else "standard",
        "disease_group": sd.groups[group].id if sd is not None and group >= 0 else None,
        "amounts": {
            "total": format_fen(int(result.total[i])),
            "fully_self_paid": format_fen(int(result.fully_self_paid[i])),
            "over_limit": format_fen(int(result.over_limit[i])),
            "pre_self_paid": format_fen(int(result.pre_self_paid[i])),
            "in_scope": format_fen(int(result.in_scope[i])),
            "deductible": format_fen(int(result.deductible[i])),
        },
        "payments": {
            "basic": format_fen(int(result.basic[i])),
            "critical_illness": format_fen(int(result.critical_illness[i])),
            "medical_assistance": format_fen(int(result.medical_assistance[i])),
            "charity": format_fen(int(result.charity[i])),
            "backstop": format_fen(int(result.backstop[i])),
        },
        "charity_by_fund": by_fund,
        "patient_pays": format_fen(int(result.patient_pays[i])),
        "hospital_bears": format_fen(int(result.hospital_bears[i])),
    }
