"""Engine results as the JSON of SPEC §6 (money as two-decimal yuan strings)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from settlement.claims.parse import NO_STANDARD, ClaimError
from settlement.engine.batch import BatchResult, ClaimBatch
from settlement.engine.tables import Tables
from settlement.jsonout import encoded_ids, write_results


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


def result_lines(
    result: BatchResult, batch: ClaimBatch, tables: Tables, claim_ids: list[str], first: int = 0
) -> list[bytes]:
    """The §6 JSON text of claims first … first + len(claim_ids) - 1, one per claim.

    Written by the compiled serialiser (settlement.jsonout) straight from the
    result columns; the engine's own errors (no_standard) as error objects.
    """
    n = len(claim_ids)
    plan = np.arange(n, dtype=np.int64)
    extra: list[bytes] = []
    for k in np.flatnonzero(result.error[first : first + n]).tolist():
        error = engine_error(result, batch, first + k, tables, claim_ids[k])
        assert error is not None
        extra.append(orjson.dumps(error_result(error)))
        plan[k] = -len(extra)
    ids, id_off = encoded_ids(claim_ids)
    text = write_results(result, batch, tables, ids, id_off, plan, extra, first)
    return text.split(b"\n")[:-1]
