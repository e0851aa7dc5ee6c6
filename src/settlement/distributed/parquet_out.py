"""`--output x.parquet`: the results of `settle --engine dask` as typed columns, in input order.

One row per input line, as the JSON lines output has: a result, or an error
(error_code and error_message set, everything else null but the claim id when
known). Money is ``decimal128(18, 2)`` yuan (`tabular.arrow_table`): exact,
the fen are its unscaled integer, and DuckDB, pandas or Spark read it as the
same amounts the JSON writes as strings. `charity_<fund id>` holds what each
fund paid, null where the fund did not apply (the JSON leaves it out).
Columns are named by the JSON's keys (English); headers are GLOSSARY.md's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from settlement.engine import BatchResult, Tables
from settlement.results import engine_error
from settlement.tabular import Column, arrow_table

from . import partition as pt
from .run import Job, Output, Progress, Summary, settle_on_cluster

MONEY: tuple[tuple[str, str, Callable[[BatchResult], npt.NDArray[np.int64]]], ...] = (
    ("total", "医疗费总额", lambda r: r.total),
    ("fully_self_paid", "全自费金额", lambda r: r.fully_self_paid),
    ("over_limit", "超限价自付金额", lambda r: r.over_limit),
    ("pre_self_paid", "先行自付金额", lambda r: r.pre_self_paid),
    ("in_scope", "符合政策范围金额", lambda r: r.in_scope),
    ("deductible", "起付标准（本次）", lambda r: r.deductible),
    ("basic", "基本医疗保险统筹基金支付", lambda r: r.basic),
    ("critical_illness", "大病保险支付", lambda r: r.critical_illness),
    ("medical_assistance", "医疗救助基金支付", lambda r: r.medical_assistance),
    ("charity", "慈善救助支付", lambda r: r.charity),
    ("emergency_relief", "疾病应急救助基金支付", lambda r: r.emergency_relief),
    ("backstop", "政府兜底保障", lambda r: r.backstop),
    ("patient_pays", "个人自付", lambda r: r.patient_pays),
    ("hospital_bears", "医疗机构承担", lambda r: r.hospital_bears),
)
"""SPEC §6's amounts and payments in its order: the JSON key, GLOSSARY.md's header, the result's column."""


def columns(tables: Tables) -> list[Column]:
    """The Parquet columns for a schedule set (one charity column per fund)."""
    return [
        Column("claim_id", "结算单号"),
        Column("error_code", "错误代码"),
        Column("error_message", "错误说明"),
        Column("schedule", "结算参数版本"),
        Column("policy_year", "年度", "int"),
        Column("pathway", "结算方式"),
        Column("disease_group", "单病种"),
        *(Column(key, header, "money") for key, header, _ in MONEY),
        *(Column(f"charity_{fund}", f"慈善救助支付（{fund}）", "money") for fund in tables.schedules.fund_ids),
    ]


@dataclass
class ArrowPiece:
    key: Any
    table: Any

    def __sizeof__(self) -> int:
        """Its bytes, as Dask sizes a result (see partition.Sized)."""
        return object.__sizeof__(self) + int(self.key.nbytes) + int(self.table.nbytes)


def _claim_ids(part: pt.Partition) -> list[str]:
    ids = part.ids.tobytes()
    off = part.id_off.tolist()
    return [orjson.loads(ids[off[i] : off[i + 1]]) for i in range(len(off) - 1)]


def render_arrow(part: pt.Partition, tables: Tables, bounds: Any) -> list[ArrowPiece]:
    """The partition's rows as Arrow tables, cut at the output groups' bounds."""
    result, batch = part.result, part.batch
    n = len(part)
    ok = result.error == 0
    claim_ids = _claim_ids(part)
    code: list[str | None] = [None] * n
    message: list[str | None] = [None] * n
    for i in np.flatnonzero(~ok).tolist():
        error = engine_error(result, batch, i, tables, claim_ids[i])
        assert error is not None
        code[i], message[i] = error.code, error.message
    versions = tables.schedules.versions
    schedule: Any = np.array([v.id for v in versions] + [""], dtype=object)[batch.version] if n else []
    groups = [[g.id for g in v.single_disease.groups] if v.single_disease else [] for v in versions]
    group = [
        groups[v][g] if g >= 0 else None for v, g in zip(batch.version.tolist(), result.group.tolist(), strict=True)
    ]
    values: dict[str, Any] = {
        "claim_id": claim_ids, "error_code": code, "error_message": message, "schedule": schedule,
        "policy_year": batch.policy_year, "pathway": np.where(result.pathway_fixed, "single_disease", "standard"),
        "disease_group": group,
    }
    values.update({key: column(result) for key, _, column in MONEY})
    valid: dict[str, Any] = {k: ok for k in ("schedule", "policy_year", "pathway", *(m for m, _, _ in MONEY))}
    valid["disease_group"] = ok & (result.group >= 0)
    for col, fund in enumerate(tables.schedules.fund_ids):
        values[f"charity_{fund}"] = result.charity_by_fund[:, col]
        valid[f"charity_{fund}"] = ok & result.charity_eligible[:, col]
    table = arrow_table(columns(tables), values, valid)
    cuts = np.searchsorted(part.key, bounds)
    return [
        ArrowPiece(part.key[cuts[g] : cuts[g + 1]], table.slice(int(cuts[g]), int(cuts[g + 1] - cuts[g])))
        for g in range(bounds.shape[0] - 1)
    ]


def error_rows(first_block: int, blocks: list[pt.BlockPieces], tables: Tables) -> ArrowPiece:
    """The parse errors of consecutive blocks as rows."""
    keys: list[int] = []
    parsed: list[dict[str, Any]] = []
    for b, block in enumerate(blocks, start=first_block):
        for pos, text in block.errors:
            keys.append((b << 32) | pos)
            parsed.append(orjson.loads(text))
    cols = columns(tables)
    n = len(parsed)
    values: dict[str, Any] = {c.key: np.zeros(n, dtype=np.int64) if c.kind in ("money", "int") else [None] * n
                              for c in cols}
    values["claim_id"] = [p.get("claim_id") for p in parsed]
    values["error_code"] = [p["error"]["code"] for p in parsed]
    values["error_message"] = [p["error"]["message"] for p in parsed]
    nothing = np.zeros(n, dtype=np.bool_)
    valid = {c.key: nothing for c in cols if c.kind in ("money", "int")}
    return ArrowPiece(np.array(keys, dtype=np.int64), arrow_table(cols, values, valid))


def assemble_arrow(*pieces: ArrowPiece) -> Any:
    """Rows of several pieces merged by key (input order)."""
    import pyarrow as pa

    key = np.concatenate([p.key for p in pieces])
    table = pa.concat_tables([p.table for p in pieces])
    return table.take(pa.array(np.argsort(key, kind="stable")))


PARQUET = Output(render_arrow, error_rows, assemble_arrow)


def settle_to_parquet(
    client: Any, jobs: list[Job], tables: Tables, target: str, parts: int, progress: Progress | None = None
) -> Summary:
    """settle_on_cluster into one Parquet file, written by this process a group of blocks at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_table(columns(tables), {c.key: [] for c in columns(tables)}).schema
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:

        def write(table: pa.Table) -> None:
            if table.num_rows:
                writer.write_table(table)

        return settle_on_cluster(client, jobs, tables, write, parts, progress, PARQUET)
