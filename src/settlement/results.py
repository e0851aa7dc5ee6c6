"""Engine results as the JSON of SPEC §6 (money as two-decimal yuan strings)."""

from __future__ import annotations

from typing import Any

import orjson

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
    parsed: dict[str, Any] = orjson.loads(result_lines(result, batch, tables, [claim_id], first=i)[0])
    return parsed


def claim_results(
    result: BatchResult, batch: ClaimBatch, tables: Tables, claim_ids: list[str], first: int = 0
) -> list[dict[str, Any]]:
    """§6 result objects of claims first … first + len(claim_ids) - 1."""
    return [orjson.loads(line) for line in result_lines(result, batch, tables, claim_ids, first)]


def _json(text: str | None) -> str:
    return orjson.dumps(text).decode()


def result_lines(
    result: BatchResult, batch: ClaimBatch, tables: Tables, claim_ids: list[str], first: int = 0
) -> list[bytes]:
    """The §6 JSON text of claims first … first + len(claim_ids) - 1, one per claim.

    The one serialiser of results: written column-wise straight to JSON text
    (names escaped once per schedule, money formatted once per value), since
    it runs for every line of a million-claim batch.
    """
    stop = first + len(claim_ids)
    pick = slice(first, stop)
    f = format_fen
    money = [
        [f(v) for v in column[pick].tolist()]
        for column in (
            result.total, result.fully_self_paid, result.over_limit, result.pre_self_paid, result.in_scope,
            result.deductible, result.basic, result.critical_illness, result.medical_assistance,
            result.charity, result.backstop, result.patient_pays, result.hospital_bears,
        )
    ]
    versions = batch.version[pick].tolist()
    years = batch.policy_year[pick].tolist()
    groups = result.group[pick].tolist()
    fixed = result.pathway_fixed[pick].tolist()
    errors = result.error[pick].tolist()
    by_fund = result.charity_by_fund[pick].tolist()
    eligible = result.charity_eligible[pick].tolist()
    fund_ids = tables.schedules.fund_ids
    schedules = tables.schedules.versions
    fund_cols = [[(_json(fund.id), fund_ids.index(fund.id)) for fund in v.charity_funds] for v in schedules]
    schedule_ids = [_json(v.id) for v in schedules]
    group_ids = [[_json(g.id) for g in v.single_disease.groups] if v.single_disease else [] for v in schedules]
    (total, fully, over, pre, in_scope, deductible, basic, critical, assistance, charity, backstop,
     patient, hospital) = money
    out: list[bytes] = []
    for k, claim_id in enumerate(claim_ids):
        if errors[k]:
            error = engine_error(result, batch, first + k, tables, claim_id)
            assert error is not None
            out.append(orjson.dumps(error_result(error)))
            continue
        v = versions[k]
        g = groups[k]
        funds = ",".join(f'{fid}:"{f(by_fund[k][c])}"' for fid, c in fund_cols[v] if eligible[k][c])
        out.append(
            (
                f'{{"claim_id":{_json(claim_id)},"schedule":{schedule_ids[v]},"policy_year":{years[k]},'
                f'"pathway":"{"single_disease" if fixed[k] else "standard"}",'
                f'"disease_group":{group_ids[v][g] if g >= 0 else "null"},'
                f'"amounts":{{"total":"{total[k]}","fully_self_paid":"{fully[k]}","over_limit":"{over[k]}",'
                f'"pre_self_paid":"{pre[k]}","in_scope":"{in_scope[k]}","deductible":"{deductible[k]}"}},'
                f'"payments":{{"basic":"{basic[k]}","critical_illness":"{critical[k]}",'
                f'"medical_assistance":"{assistance[k]}","charity":"{charity[k]}","backstop":"{backstop[k]}"}},'
                f'"charity_by_fund":{{{funds}}},"patient_pays":"{patient[k]}","hospital_bears":"{hospital[k]}"}}'
            ).encode()
        )
    return out
