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
    return claim_results(result, batch, tables, [claim_id], first=i)[0]


_MONEY = (
    "total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible",
    "basic", "critical_illness", "medical_assistance", "charity", "backstop",
    "patient_pays", "hospital_bears",
)


def claim_results(
    result: BatchResult, batch: ClaimBatch, tables: Tables, claim_ids: list[str], first: int = 0
) -> list[dict[str, Any]]:
    """§6 result objects of claims first … first + len(claim_ids) - 1, formatted column-wise."""
    stop = first + len(claim_ids)
    pick = slice(first, stop)
    f = format_fen
    cols = {name: [f(v) for v in getattr(result, name)[pick].tolist()] for name in _MONEY}
    versions = batch.version[pick].tolist()
    years = batch.policy_year[pick].tolist()
    groups = result.group[pick].tolist()
    fixed = result.pathway_fixed[pick].tolist()
    errors = result.error[pick].tolist()
    by_fund = result.charity_by_fund[pick].tolist()
    eligible = result.charity_eligible[pick].tolist()
    fund_ids = tables.schedules.fund_ids
    schedules = tables.schedules.versions
    fund_cols = [[(fund.id, fund_ids.index(fund.id)) for fund in v.charity_funds] for v in schedules]
    group_ids = [[g.id for g in v.single_disease.groups] if v.single_disease else [] for v in schedules]
    out: list[dict[str, Any]] = []
    for k, claim_id in enumerate(claim_ids):
        if errors[k]:
            error = engine_error(result, batch, first + k, tables, claim_id)
            assert error is not None
            out.append(error_result(error))
            continue
        v = versions[k]
        g = groups[k]
        out.append({
            "claim_id": claim_id,
            "schedule": schedules[v].id,
            "policy_year": years[k],
            "pathway": "single_disease" if fixed[k] else "standard",
            "disease_group": group_ids[v][g] if g >= 0 else None,
            "amounts": {
                "total": cols["total"][k],
                "fully_self_paid": cols["fully_self_paid"][k],
                "over_limit": cols["over_limit"][k],
                "pre_self_paid": cols["pre_self_paid"][k],
                "in_scope": cols["in_scope"][k],
                "deductible": cols["deductible"][k],
            },
            "payments": {
                "basic": cols["basic"][k],
                "critical_illness": cols["critical_illness"][k],
                "medical_assistance": cols["medical_assistance"][k],
                "charity": cols["charity"][k],
                "backstop": cols["backstop"][k],
            },
            "charity_by_fund": {fid: f(by_fund[k][c]) for fid, c in fund_cols[v] if eligible[k][c]},
            "patient_pays": cols["patient_pays"][k],
            "hospital_bears": cols["hospital_bears"][k],
        })
    return out
