"""What a distributed settlement moves around, and what is done to it (no Dask in this module).

A block of input (read as `batchrun` reads it) is split by person into
pieces, one per person partition; a partition is the pieces of every block
for its persons, concatenated in input order. The engine settles a partition
— or the claims of some of its persons — with every pool column
(`Accumulators.pool_used`: the charity funds, then any other pool the engine
keeps) replaced by a *view*: per claim, what the pool had paid before that
claim in its policy year. Each claim gets a pool row of its own (addressed by
`ClaimBatch.year_index`) holding its view, so the engine itself computes
min(pay, person cap left, pool left) exactly as in the sequential run: the
rules stay in `settlement.engine`.

The views come from prefix sums of the draws per pool column and policy
year, in input order, across partitions (`records`, `range_prefix`). A claim
whose draw could change under the new view is *affected* (`apply_view`) and
its person is settled again; when no claim is affected anywhere, the results
are a fixed point of the sequential definition, hence equal to it claim for
claim (the argument is in `settlement.distributed.run`).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

from settlement.batchrun import PreparedChunk
from settlement.claims.columnar import gather_spans, split_lines
from settlement.engine import UNLIMITED, Accumulators, BatchResult, ClaimBatch, Tables, settle
from settlement.engine.pipeline import emergency_eligible
from settlement.jsonout import write_results
from settlement.results import engine_error, error_result

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
B8 = npt.NDArray[np.bool_]

def nbytes(value: object) -> int:
    """Bytes an object holds in arrays, bytes and strings (its fields', its items'), roughly."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (bytes, str)):
        return len(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):  # a long list (person keys) from a sample of its items, as dask.sizeof
        sample = value[:: max(1, len(value) // 16)]
        return (sum(nbytes(v) for v in sample) * len(value)) // max(1, len(sample)) + 8 * len(value)
    if isinstance(value, dict):
        return sum(nbytes(k) + nbytes(v) for k, v in value.items())
    return 8


class Sized:
    """sys.getsizeof counts the arrays a dataclass holds: Dask sizes a task's result by it (dask.sizeof's
    fallback) to place the tasks that read it and to decide what to spill; without it a partition of a
    million claims looks like 56 bytes and is moved to wherever a small input happens to be."""

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + nbytes(self)


def key_of(block: I64 | int, pos: I64 | int) -> I64:
    """The input-order key of a claim: its block, then its line in the block."""
    return (np.asarray(block, dtype=np.int64) << 32) | np.asarray(pos, dtype=np.int64)


def _spans(start: I64, length: I64) -> tuple[I64, I64]:
    """Indexes of the ranges [start[i], start[i] + length[i]) one after another, and their offsets."""
    off = np.zeros(length.shape[0] + 1, dtype=np.int64)
    np.cumsum(length, out=off[1:])
    pick = np.repeat(start - off[:-1], length) + np.arange(int(off[-1]), dtype=np.int64)
    return pick, off


def take(batch: ClaimBatch, idx: I64) -> ClaimBatch:
    """Claims idx of a batch, in that order, with their lines; the value lists are shared."""
    pick, line_start = _spans(batch.line_start[idx], np.diff(batch.line_start)[idx])
    return ClaimBatch(
        version=batch.version[idx],
        policy_year=batch.policy_year[idx],
        person_year=batch.person_year[idx],
        year_index=batch.year_index[idx],
        scheme=batch.scheme[idx],
        category=batch.category[idx],
        visit_type=batch.visit_type[idx],
        level=batch.level[idx],
        age=batch.age[idx],
        sessions=batch.sessions[idx],
        diagnosis=batch.diagnosis[idx],
        treatment=batch.treatment[idx],
        diagnosis_values=batch.diagnosis_values,
        treatment_values=batch.treatment_values,
        line_start=line_start,
        line_item=batch.line_item[pick],
        line_qty=batch.line_qty[pick],
        line_price=batch.line_price[pick],
        flags=None if batch.flags is None else batch.flags[idx],
    )


def take_ids(ids: U8, id_off: I64, idx: I64) -> tuple[U8, I64]:
    """The JSON-encoded ids idx one after another, and their offsets."""
    length = np.diff(id_off)[idx]
    off = np.zeros(idx.shape[0] + 1, dtype=np.int64)
    np.cumsum(length, out=off[1:])
    out = np.empty(int(off[-1]), dtype=np.uint8)
    gather_spans(ids, id_off[idx], off, out)
    return out, off


def person_partition(person_id: str, parts: int) -> int:
    """A person's partition, the same in every process (Python's hash() of a str is salted per process).

    CRC-32 of the whole id: the id's own digits are far from uniform (a birth month's first digit is 0 or 1),
    and a partition count that is a power of two took only the lowest byte of the last eight characters —
    with 4 partitions, 2 were empty and one held three quarters of the persons.
    """
    return zlib.crc32(person_id.encode("utf-8")) % parts


@dataclass
class Piece(Sized):
    """The claims of one block that belong to one person partition, in input order."""

    block: int
    pos: I64
    """Line position of each claim within its block."""
    batch: ClaimBatch
    """person_year: rows of person_keys (-1: no person-year, e.g. an unidentified patient)."""
    person_keys: list[tuple[str, int]]
    ids: U8
    id_off: I64
    discharged: I64
    """Discharge date of each claim as y·10^4 + m·100 + d."""


@dataclass
class BlockPieces(Sized):
    """A block read and split: its pieces (one per partition), its parse errors and its line count."""

    pieces: list[Piece | None]
    errors: list[tuple[int, bytes]]
    size: int


def split_chunk(block: int, chunk: PreparedChunk, parts: int) -> BlockPieces:
    """A prepared block (batchrun.prepare_*) split by person into `parts` pieces."""
    batch = chunk.batch
    if batch is None:
        return BlockPieces([None] * parts, chunk.errors, chunk.size)
    settled = np.ones(chunk.size, dtype=np.bool_)
    settled[[k for k, _ in chunk.errors]] = False
    pos = np.flatnonzero(settled).astype(np.int64)
    row_part = np.array([person_partition(pid, parts) for pid, _ in chunk.person_keys] + [0], dtype=np.int64)
    py = batch.person_year
    # a claim without a person-year row has no accumulators to share: any partition will do
    claim_part = np.where(py >= 0, row_part[py], pos % parts)
    pieces: list[Piece | None] = []
    for p in range(parts):
        idx = np.flatnonzero(claim_part == p)
        if idx.size == 0:
            pieces.append(None)
            continue
        sub = take(batch, idx)
        rows, local = np.unique(sub.person_year, return_inverse=True)
        keep = rows >= 0
        renumber = np.where(keep, np.cumsum(keep) - 1, -1)
        sub.person_year = renumber[local].astype(np.int64)
        ids, id_off = take_ids(chunk.ids, chunk.id_off, idx)
        keys = [chunk.person_keys[r] for r in rows[keep].tolist()]
        discharged = chunk.discharged[idx] if chunk.discharged is not None else np.zeros(idx.size, dtype=np.int64)
        pieces.append(Piece(block, pos[idx], sub, keys, ids, id_off, discharged))
    return BlockPieces(pieces, chunk.errors, chunk.size)


# --- pool columns ---------------------------------------------------------------------------------

def pool_width(tables: Tables) -> int:
    """Columns of Accumulators.pool_used: the charity funds' (at least one), then the emergency relief fund's."""
    return int(Accumulators.zeros(0, 0, tables.n_funds).pool_used.shape[1])


def pool_limits(tables: Tables) -> I64:
    """[version, pool column]: the annual pool each version sets (UNLIMITED: none, or no such fund)."""
    n_v = len(tables.schedules.versions)
    limits = np.full((n_v, pool_width(tables)), UNLIMITED, dtype=np.int64)
    for v in range(n_v):
        for f in range(int(tables.fund_count[v])):
            limits[v, tables.fund_col[v, f]] = tables.fund_pool[v, f]
    limits[:, -1] = np.where(tables.er_present, tables.er_pool, UNLIMITED)  # SPEC §5.5: the last column
    return limits


def pool_draws(result: BatchResult) -> I64:
    """[claim, pool column]: what each claim drew from each pool (the charity funds, then emergency relief)."""
    return np.column_stack([result.charity_by_fund, result.emergency_relief])


def pool_eligible(result: BatchResult, emergency: B8) -> B8:
    """[claim, pool column]: whether the claim reads the pool at all (the engine's charity_eligible, and
    `emergency`: pipeline.emergency_eligible of the claims, which does not depend on any result)."""
    return np.column_stack([result.charity_eligible, emergency])


# --- a partition --------------------------------------------------------------------------------

@dataclass
class Partition(Sized):
    """The claims of some persons, in input order, with their current results and pool views."""

    index: int
    batch: ClaimBatch
    """person_year: rows of this partition (-1: none); year_index: the claim's own pool row (0 … n - 1)."""
    key: I64
    """Input-order key of each claim (key_of)."""
    ids: U8
    id_off: I64
    discharged: I64
    limits: I64
    """[claim, pool column]: the pool the claim's version sets."""
    emergency: B8
    """Whether the claim reads the emergency relief pool (pipeline.emergency_eligible: its own fields only)."""
    view: I64
    """[claim, pool column]: what the pool had paid before the claim, as the claim was last settled."""
    result: BatchResult
    settled: int
    """Claims settled so far, pass 1 included."""

    def __len__(self) -> int:
        return len(self.batch)


def _remap(values: list[str], into: dict[str, int]) -> I64:
    return np.array([into.setdefault(v, len(into)) for v in values] + [-1], dtype=np.int64)


def concat_pieces(pieces: list[Piece]) -> tuple[ClaimBatch, I64, U8, I64, I64]:
    """The pieces' claims one after another as one batch (person-years and value lists merged)."""
    persons: dict[tuple[str, int], int] = {}
    diagnoses: dict[str, int] = {}
    treatments: dict[str, int] = {}
    person_year: list[I64] = []
    diagnosis: list[I64] = []
    treatment: list[I64] = []
    for piece in pieces:
        b = piece.batch
        person_map = np.array([persons.setdefault(k, len(persons)) for k in piece.person_keys] + [-1], dtype=np.int64)
        person_year.append(person_map[b.person_year])
        diagnosis.append(_remap(b.diagnosis_values, diagnoses)[b.diagnosis])
        treatment.append(_remap(b.treatment_values, treatments)[b.treatment])
    empty = np.zeros(0, dtype=np.int64)

    def cat(parts: list[I64]) -> I64:
        return np.concatenate(parts) if parts else empty.copy()

    def column(get: Callable[[ClaimBatch], I64]) -> I64:
        return cat([get(p.batch) for p in pieces])

    line_start = np.zeros(sum(len(p.batch) for p in pieces) + 1, dtype=np.int64)
    np.cumsum(cat([np.diff(p.batch.line_start) for p in pieces]), out=line_start[1:])
    flagged = any(p.batch.flags is not None for p in pieces)
    batch = ClaimBatch(
        version=column(lambda b: b.version),
        policy_year=column(lambda b: b.policy_year),
        person_year=cat(person_year),
        year_index=column(lambda b: b.year_index),
        scheme=column(lambda b: b.scheme),
        category=column(lambda b: b.category),
        visit_type=column(lambda b: b.visit_type),
        level=column(lambda b: b.level),
        age=column(lambda b: b.age),
        sessions=column(lambda b: b.sessions),
        diagnosis=cat(diagnosis),
        treatment=cat(treatment),
        diagnosis_values=list(diagnoses),
        treatment_values=list(treatments),
        line_start=line_start,
        line_item=column(lambda b: b.line_item),
        line_qty=column(lambda b: b.line_qty),
        line_price=column(lambda b: b.line_price),
        flags=cat([p.batch.claim_flags() for p in pieces]) if flagged else None,
    )
    id_off = np.zeros(line_start.shape[0], dtype=np.int64)
    np.cumsum(cat([np.diff(p.id_off) for p in pieces]), out=id_off[1:])
    id_bytes = np.concatenate([p.ids for p in pieces]) if pieces else np.zeros(0, dtype=np.uint8)
    keys = cat([key_of(p.block, p.pos) for p in pieces])
    return batch, keys, id_bytes, id_off, cat([p.discharged for p in pieces])


def unlimited_view(limits: I64) -> I64:
    """A view under which every pool has UNLIMITED left (no overflow: limits are ≤ UNLIMITED)."""
    return np.minimum(0, limits - UNLIMITED)


def build_partition(index: int, pieces: list[Piece | None], tables: Tables) -> Partition:
    """Pass 1: the partition's claims concatenated and settled with every pool unlimited."""
    present = [p for p in pieces if p is not None]
    batch, key, ids, id_off, discharged = concat_pieces(present)
    n = len(batch)
    batch.year_index = np.arange(n, dtype=np.int64)  # each claim its own pool row (the concatenation's copy)
    limits = pool_limits(tables)[batch.version]
    view = unlimited_view(limits)
    result = _settle_view(batch, view, int(batch.person_year.max(initial=-1)) + 1, tables)
    emergency = emergency_eligible(batch, tables)
    return Partition(index, batch, key, ids, id_off, discharged, limits, emergency, view, result, n)


def _settle_view(batch: ClaimBatch, view: I64, persons: int, tables: Tables) -> BatchResult:
    """The engine on a batch whose claim i reads pool row i (year_index), holding view[i]."""
    acc = Accumulators.zeros(persons, len(batch), tables.n_funds)
    acc.pool_used[:] = view
    result = settle(batch, tables, acc)
    result.accumulators = Accumulators.zeros(0, 0, tables.n_funds)  # per-claim pool rows: not kept
    return result


def _settle_rows(batch: ClaimBatch, view: I64, idx: I64, tables: Tables) -> BatchResult:
    """The engine on claims idx (whole persons), each claim reading its own pool row of the view."""
    sub = take(batch, idx)
    rows, local = np.unique(sub.person_year, return_inverse=True)
    keep = rows >= 0
    renumber = np.where(keep, np.cumsum(keep) - 1, -1)
    sub.person_year = renumber[local].astype(np.int64)
    sub.year_index = np.arange(len(sub), dtype=np.int64)
    return _settle_view(sub, view[idx], int(np.count_nonzero(keep)), tables)


def _scatter(into: BatchResult, idx: I64, part: BatchResult) -> BatchResult:
    """`into` with the rows idx replaced by `part`'s (new arrays: the old result stays as it was)."""
    updates: dict[str, object] = {}
    n = len(into)
    for f in dataclasses.fields(into):
        old = getattr(into, f.name)
        if isinstance(old, np.ndarray) and old.ndim >= 1 and old.shape[0] == n:
            new = old.copy()
            new[idx] = getattr(part, f.name)
            updates[f.name] = new
    return dataclasses.replace(into, **updates)  # type: ignore[arg-type]


# --- prefix sums ----------------------------------------------------------------------------------

@dataclass
class Records(Sized):
    """A partition's claims that read one of the pool columns, cut by input range."""

    ranges: list[tuple[I64, I64, I64]]
    """Per range: (key, policy year, draws [claim, column])."""
    totals: list[dict[int, I64]]
    """Per range: policy year → the draws' sums per column."""


def _selected(part: Partition, cols: list[int]) -> I64:
    eligible = pool_eligible(part.result, part.emergency)[:, cols]
    return np.flatnonzero(eligible.any(axis=1))


def records(part: Partition, cols: list[int], bounds: I64) -> Records:
    """The draws on `cols` of the claims that read them, cut at the range bounds (keys of range starts)."""
    sel = _selected(part, cols)
    key = part.key[sel]
    year = part.batch.policy_year[sel]
    draws = pool_draws(part.result)[sel][:, cols]
    cuts = np.searchsorted(key, bounds)
    ranges: list[tuple[I64, I64, I64]] = []
    totals: list[dict[int, I64]] = []
    for r in range(bounds.shape[0] - 1):
        s, e = int(cuts[r]), int(cuts[r + 1])
        ranges.append((key[s:e], year[s:e], draws[s:e]))
        totals.append({int(y): draws[s:e][year[s:e] == y].sum(axis=0) for y in np.unique(year[s:e]).tolist()})
    return Records(ranges, totals)


def range_piece(rec: Records, r: int) -> tuple[I64, I64, I64]:
    return rec.ranges[r]


def range_totals(rec: Records) -> list[dict[int, I64]]:
    return rec.totals


def range_prefix(offset: dict[int, I64], *pieces: tuple[I64, I64, I64]) -> list[I64]:
    """Pool used before each claim of one input range: the range's offset per year plus the sums before it.

    pieces: one per partition (each in input order); returns the views per partition, in the same order.
    """
    lengths = [p[0].shape[0] for p in pieces]
    width = pieces[0][2].shape[1] if pieces else 0
    key = np.concatenate([p[0] for p in pieces])
    year = np.concatenate([p[1] for p in pieces])
    draws = np.concatenate([p[2] for p in pieces]).reshape(-1, width)
    order = np.argsort(key, kind="stable")
    year_s = year[order]
    draws_s = draws[order]
    before_s = np.zeros_like(draws_s)
    for y in np.unique(year_s).tolist():
        rows = np.flatnonzero(year_s == y)
        d = draws_s[rows]
        before_s[rows] = np.cumsum(d, axis=0) - d + offset.get(int(y), np.zeros(width, dtype=np.int64))
    before = np.empty_like(before_s)
    before[order] = before_s
    return np.split(before, np.cumsum(lengths)[:-1]) if pieces else []


@dataclass(frozen=True)
class RoundStats:
    affected: int
    """Claims whose draw could change under the new views."""
    settled: int
    """Claims settled again (all claims of the affected claims' persons)."""


def apply_view(part: Partition, cols: list[int], tables: Tables, *before: I64) -> tuple[Partition, RoundStats]:
    """New views on `cols` (per range, from range_prefix); the persons of affected claims settled again.

    A claim that drew d with r left in its pool (under the view it was settled with) and would see r'
    now: when d < r the pool did not bind, so it would still draw d as long as r' ≥ d; when d = r it
    may have wanted more, so only r' = r leaves it alone. A person none of whose claims is affected
    settles exactly as before (claim by claim, in order), so only the others are settled again.
    """
    sel = _selected(part, cols)
    new = np.concatenate(before).reshape(-1, len(cols)) if before else np.zeros((0, len(cols)), np.int64)
    eligible = pool_eligible(part.result, part.emergency)[sel][:, cols]
    draws = pool_draws(part.result)[sel][:, cols]
    limits = part.limits[sel][:, cols]
    seen = np.maximum(0, limits - part.view[sel][:, cols])
    now = np.maximum(0, limits - new)
    affected = eligible & np.where(draws < seen, now < draws, now != seen)
    hit = sel[affected.any(axis=1)]
    view = part.view.copy()
    view[sel[:, None], np.asarray(cols)[None, :]] = new
    if hit.size == 0:
        return dataclasses.replace(part, view=view), RoundStats(0, 0)
    py = part.batch.person_year
    persons = np.unique(py[hit])
    redo = np.isin(py, persons[persons >= 0])
    redo[hit] = True  # claims without a person-year row stand alone
    idx = np.flatnonzero(redo)
    result = _scatter(part.result, idx, _settle_rows(part.batch, view, idx, tables))
    stats = RoundStats(int(hit.size), int(idx.size))
    return dataclasses.replace(part, view=view, result=result, settled=part.settled + int(idx.size)), stats


def partition_of(pair: tuple[Partition, RoundStats]) -> Partition:
    return pair[0]


def stats_of(pair: tuple[Partition, RoundStats]) -> RoundStats:
    return pair[1]


# --- output ---------------------------------------------------------------------------------------

@dataclass
class TextPiece(Sized):
    """Result lines of one partition for one output group: their keys and their text."""

    key: I64
    text: bytes


def render_json(part: Partition, tables: Tables, bounds: I64) -> list[TextPiece]:
    """The partition's result lines (SPEC §6, the one writer), cut at the output groups' bounds."""
    n = len(part)
    plan = np.arange(n, dtype=np.int64)
    extra: list[bytes] = []
    result, batch = part.result, part.batch
    for i in np.flatnonzero(result.error).tolist():  # the engine's own errors (no_standard)
        claim_id = orjson.loads(part.ids[part.id_off[i] : part.id_off[i + 1]].tobytes())
        error = engine_error(result, batch, i, tables, claim_id)
        assert error is not None
        extra.append(orjson.dumps(error_result(error)))
        plan[i] = -len(extra)
    text = write_results(result, batch, tables, part.ids, part.id_off, plan, extra) if n else b""
    ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10) + 1
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    cuts = np.searchsorted(part.key, bounds)
    out: list[TextPiece] = []
    for g in range(bounds.shape[0] - 1):
        s, e = int(cuts[g]), int(cuts[g + 1])
        out.append(TextPiece(part.key[s:e], text[int(starts[s]) : int(ends[e - 1])] if e > s else b""))
    return out


def error_piece(first_block: int, blocks: list[BlockPieces], tables: Tables | None = None) -> TextPiece:
    """The parse errors of consecutive blocks as result lines with their keys."""
    keys: list[int] = []
    texts: list[bytes] = []
    for b, block in enumerate(blocks, start=first_block):
        for pos, text in block.errors:
            keys.append((b << 32) | pos)
            texts.append(text + b"\n")
    return TextPiece(np.array(keys, dtype=np.int64), b"".join(texts))


def assemble(*pieces: TextPiece) -> bytes:
    """Lines of several pieces merged by key (input order)."""
    key = np.concatenate([p.key for p in pieces]) if pieces else np.zeros(0, dtype=np.int64)
    if key.size == 0:
        return b""
    data = np.frombuffer(b"".join(p.text for p in pieces), dtype=np.uint8)
    starts, ends = split_lines(data)  # each line with its newline
    order = np.argsort(key, kind="stable")
    length = (ends - starts)[order]
    off = np.zeros(order.shape[0] + 1, dtype=np.int64)
    np.cumsum(length, out=off[1:])
    out = np.empty(int(off[-1]), dtype=np.uint8)
    gather_spans(data, starts[order], off, out)
    return out.tobytes()


def block_meta(block: BlockPieces) -> BlockPieces:
    """The block without its pieces (errors and size only), to keep once the partitions are built."""
    return BlockPieces([], block.errors, block.size)


def piece_for(block: BlockPieces, p: int) -> Piece | None:
    return block.pieces[p]


def warm_up(tables: Tables) -> int:
    """Loads the compiled code (reader, engine, writer) from numba's cache in this process; returns its pid."""
    import os

    from settlement.batchrun import prepare_block

    prepare_block(b"{}\n", tables)
    empty = build_partition(0, [], tables)
    render_json(empty, tables, key_of(np.array([0, 1]), 0))
    return os.getpid()
