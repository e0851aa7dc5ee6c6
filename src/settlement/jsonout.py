"""The §6 result JSON written by a compiled loop straight from the engine's int64 fen columns.

The one serialiser of results (`results.result_lines` is built on it): a
million-claim batch writes a million lines, and formatting them one Python
string at a time cost more than settling them. Every name the text carries
(claim ids, schedule, group and fund ids) arrives already JSON-encoded by
orjson, so the loop only copies bytes and writes integers; the layout is
orjson's compact one, key for key, which the tests hold it to.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

from settlement import jit
from settlement.engine.batch import BatchResult, ClaimBatch
from settlement.engine.tables import Tables
from settlement.jit import helper, kernel

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
# The fixed text between the values, in writing order.
_PIECES = (
    b'{"claim_id":',
    b',"schedule":',
    b',"policy_year":',
    b',"pathway":"single_disease"',
    b',"pathway":"standard"',
    b',"disease_group":',
    b"null",
    b',"amounts":{"total":"',
    b'","fully_self_paid":"',
    b'","over_limit":"',
    b'","pre_self_paid":"',
    b'","in_scope":"',
    b'","deductible":"',
    b'"},"payments":{"basic":"',
    b'","critical_illness":"',
    b'","medical_assistance":"',
    b'","charity":"',
    b'","emergency_relief":"',
    b'","backstop":"',
    b'"},"charity_by_fund":{',
    b'},"patient_pays":"',
    b'","hospital_bears":"',
    b'"}',
    b':"',
    b'"',
    b",",
)
_P_CLAIM, _P_SCHEDULE, _P_YEAR, _P_FIXED, _P_STANDARD, _P_GROUP, _P_NULL = range(7)
_P_MONEY = 7
_N_MONEY = 12
"""_P_MONEY + j precedes money column j for j < _N_MONEY (amounts, payments); then the funds."""
_P_FUNDS, _P_PATIENT, _P_HOSPITAL, _P_END, _P_FUND_VALUE, _P_QUOTE, _P_COMMA = range(19, 26)
PIECES = np.frombuffer(b"".join(_PIECES), dtype=np.uint8).copy()
PIECE_OFF = np.cumsum([0, *(len(p) for p in _PIECES)]).astype(np.int64)
_MAX_FIXED = sum(len(p) for p in _PIECES) + 15 * 21
"""Bytes of one result line besides its names and funds: all pieces once, 14 money values and the year."""


@helper(inline=True)
def _put(out: U8, pos: int, src: U8, s: int, e: int) -> int:
    for j in range(s, e):
        out[pos] = src[j]
        pos += 1
    return pos


@helper(inline=True)
def _piece(out: U8, pos: int, pieces: U8, piece_off: I64, k: int) -> int:
    return _put(out, pos, pieces, piece_off[k], piece_off[k + 1])


@helper(inline=True)
def _uint(out: U8, pos: int, v: int, min_digits: int) -> int:
    n = 1
    t = v
    while t >= 10:
        t //= 10
        n += 1
    if n < min_digits:
        n = min_digits
    for j in range(n - 1, -1, -1):
        out[pos + j] = 48 + v % 10
        v //= 10
    return pos + n


@helper(inline=True)
def _fen(out: U8, pos: int, fen: int) -> int:
    """Money as yuan with exactly two decimals (money.format_fen)."""
    if fen < 0:
        out[pos] = 45
        pos += 1
        fen = -fen
    pos = _uint(out, pos, fen // 100, 1)
    out[pos] = 46
    return _uint(out, pos + 1, fen % 100, 2)


@kernel
def _write_kernel(
    plan: I64, out: U8, pieces: U8, piece_off: I64,
    ids: U8, id_off: I64, extra: U8, extra_off: I64,
    version: I64, year: I64, group: I64, fixed: npt.NDArray[np.bool_], money: I64,
    by_fund: I64, eligible: npt.NDArray[np.bool_],
    names: U8, name_off: I64, schedule_name: I64, group_name_base: I64,
    fund_base: I64, fund_count: I64, fund_name: I64, fund_col: I64,
) -> int:
    """Writes line after line, each ended by a newline; returns the bytes written.

    plan[j] ≥ 0: the result of claim plan[j]; plan[j] < 0: the prepared text extra[-plan[j] - 1].
    money[c, i]: the 14 money columns of claim i in result order. Names (JSON-encoded) sit in names at
    name_off: schedule_name[v]; group g of version v at group_name_base[v] + g; charity slot f of version v
    at fund_name[fund_base[v] + f], with its fund column fund_col[fund_base[v] + f].
    """
    pos = 0
    for j in range(plan.shape[0]):
        i = plan[j]
        if i < 0:
            x = -i - 1
            pos = _put(out, pos, extra, extra_off[x], extra_off[x + 1])
            out[pos] = 10
            pos += 1
            continue
        v = version[i]
        pos = _piece(out, pos, pieces, piece_off, _P_CLAIM)
        pos = _put(out, pos, ids, id_off[i], id_off[i + 1])
        pos = _piece(out, pos, pieces, piece_off, _P_SCHEDULE)
        name = schedule_name[v]
        pos = _put(out, pos, names, name_off[name], name_off[name + 1])
        pos = _piece(out, pos, pieces, piece_off, _P_YEAR)
        pos = _uint(out, pos, year[i], 1)
        pos = _piece(out, pos, pieces, piece_off, _P_FIXED if fixed[i] else _P_STANDARD)
        pos = _piece(out, pos, pieces, piece_off, _P_GROUP)
        g = group[i]
        if g >= 0:
            name = group_name_base[v] + g
            pos = _put(out, pos, names, name_off[name], name_off[name + 1])
        else:
            pos = _piece(out, pos, pieces, piece_off, _P_NULL)
        for c in range(_N_MONEY):
            pos = _piece(out, pos, pieces, piece_off, _P_MONEY + c)
            pos = _fen(out, pos, money[c, i])
        pos = _piece(out, pos, pieces, piece_off, _P_FUNDS)
        first = True
        for f in range(fund_count[v]):
            slot = fund_base[v] + f
            col = fund_col[slot]
            if not eligible[i, col]:
                continue
            if not first:
                pos = _piece(out, pos, pieces, piece_off, _P_COMMA)
            first = False
            name = fund_name[slot]
            pos = _put(out, pos, names, name_off[name], name_off[name + 1])
            pos = _piece(out, pos, pieces, piece_off, _P_FUND_VALUE)
            pos = _fen(out, pos, by_fund[i, col])
            pos = _piece(out, pos, pieces, piece_off, _P_QUOTE)
        pos = _piece(out, pos, pieces, piece_off, _P_PATIENT)
        pos = _fen(out, pos, money[_N_MONEY, i])
        pos = _piece(out, pos, pieces, piece_off, _P_HOSPITAL)
        pos = _fen(out, pos, money[_N_MONEY + 1, i])
        pos = _piece(out, pos, pieces, piece_off, _P_END)
        out[pos] = 10
        pos += 1
    return pos


@dataclass(frozen=True)
class Names:
    """A schedule set's names, JSON-encoded once, in the tables _write_kernel reads."""

    names: U8
    name_off: I64
    schedule_name: I64
    group_name_base: I64
    fund_base: I64
    fund_count: I64
    fund_name: I64
    fund_col: I64
    longest: int
    """Bytes of the longest schedule name + group name + all fund parts of one version."""

    @classmethod
    def build(cls, tables: Tables) -> Names:
        texts: list[bytes] = []

        def add(text: str) -> int:
            texts.append(orjson.dumps(text))
            return len(texts) - 1

        versions = tables.schedules.versions
        fund_ids = tables.schedules.fund_ids
        schedule_name: list[int] = []
        group_base: list[int] = []
        fund_base: list[int] = []
        fund_count: list[int] = []
        fund_name: list[int] = []
        fund_col: list[int] = []
        longest = 0
        for v in versions:
            schedule_name.append(add(v.id))
            groups = v.single_disease.groups if v.single_disease else ()
            group_base.append(len(texts))
            for g in groups:
                add(g.id)
            fund_base.append(len(fund_name))
            fund_count.append(len(v.charity_funds))
            for fund in v.charity_funds:
                fund_name.append(add(fund.id))
                fund_col.append(fund_ids.index(fund.id))
            size = len(texts[schedule_name[-1]]) + max((len(orjson.dumps(g.id)) for g in groups), default=0)
            size += sum(len(orjson.dumps(fund.id)) + 25 for fund in v.charity_funds)
            longest = max(longest, size)
        return cls(
            np.frombuffer(b"".join(texts), dtype=np.uint8).copy() if texts else np.zeros(0, np.uint8),
            np.cumsum([0, *(len(t) for t in texts)]).astype(np.int64),
            np.array(schedule_name, dtype=np.int64),
            np.array(group_base, dtype=np.int64),
            np.array(fund_base, dtype=np.int64),
            np.array(fund_count, dtype=np.int64),
            np.array(fund_name, dtype=np.int64),
            np.array(fund_col, dtype=np.int64),
            longest,
        )


_names: dict[int, tuple[weakref.ref[Tables], Names]] = {}


def names_of(tables: Tables) -> Names:
    """The JSON-encoded names of a schedule set, built once per Tables."""
    held = _names.get(id(tables))
    if held is None or held[0]() is not tables:
        held = (weakref.ref(tables), Names.build(tables))
        _names[id(tables)] = held
        weakref.finalize(tables, _names.pop, id(tables), None)  # no Tables kept alive by the cache
    return held[1]


_NO_EXTRA = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8))


def encoded_ids(claim_ids: Sequence[str]) -> tuple[U8, I64]:
    """Claim ids JSON-encoded one after another, and their offsets."""
    if len(claim_ids) == 1:  # the counter's case, kept cheap
        text = orjson.dumps(claim_ids[0])
        return np.frombuffer(text, dtype=np.uint8), np.array([0, len(text)], dtype=np.int64)
    parts = [orjson.dumps(c) for c in claim_ids]
    off = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=off[1:])
    return np.frombuffer(b"".join(parts), dtype=np.uint8), off


def write_results(
    result: BatchResult, batch: ClaimBatch, tables: Tables, ids: U8, id_off: I64, plan: I64,
    extra: Sequence[bytes] = (), first: int = 0,
) -> bytes:
    """Result lines, each ended by a newline, in the order of plan (see _write_kernel).

    Claim i of plan is claim first + i of the batch and result; its id is ids[id_off[i]:id_off[i + 1]],
    JSON-encoded. A claim the engine refused (no_standard) must be planned as an extra text instead.
    """
    names = names_of(tables)
    n = id_off.shape[0] - 1
    jit.want(n)
    stop = first + n
    pick = slice(first, stop)
    money = np.empty((_N_MONEY + 2, n), dtype=np.int64)
    for row, column in enumerate((
        result.total, result.fully_self_paid, result.over_limit, result.pre_self_paid, result.in_scope,
        result.deductible, result.basic, result.critical_illness, result.medical_assistance,
        result.charity, result.emergency_relief, result.backstop, result.patient_pays, result.hospital_bears,
    )):
        money[row] = column[pick]
    if extra:
        extra_off = np.zeros(len(extra) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in extra], out=extra_off[1:])
        extra_buf = np.frombuffer(b"".join(extra), dtype=np.uint8)
    else:
        extra_off, extra_buf = _NO_EXTRA
    results = int(np.count_nonzero(plan >= 0))
    size = results * (_MAX_FIXED + names.longest) + int(id_off[-1]) + int(extra_off[-1]) + plan.shape[0]
    out = np.empty(size, dtype=np.uint8)
    used = _write_kernel(
        plan, out, PIECES, PIECE_OFF, ids, id_off, extra_buf, extra_off,
        batch.version[pick], batch.policy_year[pick], result.group[pick], result.pathway_fixed[pick], money,
        result.charity_by_fund[pick], result.charity_eligible[pick],
        names.names, names.name_off, names.schedule_name, names.group_name_base,
        names.fund_base, names.fund_count, names.fund_name, names.fund_col,
    )
    return out[:used].tobytes()
