"""Settling a stream of JSON lines in order: the job behind `settlement settle`.

Input is read in blocks of whole lines. Reading a block — splitting it into
lines, decoding, validating, the person id, schedule and catalog checks,
building the columnar batch — depends on nothing but the block, so worker
processes do it ahead, in parallel (`prepare_block`, `prepare_chunk`).
Settling depends on every earlier claim, so the main process settles the
blocks strictly in input order (`StreamSettler.settle_prepared_text`),
carrying the accumulators from block to block, and writes each block's
results before the next. Memory stays bounded by the blocks in flight,
whatever the length of the stream. With one worker the same functions run
inline.

A block is read by the compiled columnar scanner (`claims.columnar`) into
columns; the lines it cannot vouch for — every error, and anything unusual —
go one by one through the msgspec reader (`claims.fast`) and the pydantic
model, which write every error message. Both kinds end in one batch, in
input order.
"""

from __future__ import annotations

import io
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from settlement import jit
from settlement.claims import (
    INVALID_CLAIM,
    ClaimError,
    DuplicateKeyError,
    PreparedClaim,
    decode_json,
    prepare_claim,
    validate_claim,
)
from settlement.claims.columnar import NONE_CATEGORY, gather_spans, intern_spans, scan_lines, split_lines
from settlement.claims.columns import BatchBuilder, ClaimColumns, build_batch, columns_of, number_rows
from settlement.claims.fast import fast_records
from settlement.claims.record import ClaimRecord
from settlement.engine import Accumulators, BatchResult, ClaimBatch, Tables, compile_tables, settle
from settlement.jsonout import write_results
from settlement.results import engine_error, error_result

if TYPE_CHECKING:
    from concurrent.futures import Future

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
T = TypeVar("T")

CHUNK = 20_000
"""Lines per chunk when the input comes as lines (settle_stream)."""
BLOCK_BYTES = 8 << 20
"""Bytes per block when the input is a file (settle_file): ~6,700 claims of 25 lines (docs/PERFORMANCE.md §7.2)."""

COLUMNAR = True
"""The columnar scanner is used (the tests switch it off to compare with the per-line readers alone)."""


def _prepare(line: bytes | str, tables: Tables, record: ClaimRecord | None = None) -> PreparedClaim | ClaimError:
    """One line through the checks of SPEC §6; `record` when the fast path already read it."""
    try:
        if record is None:
            try:
                obj = decode_json(line)
            except DuplicateKeyError as exc:
                return ClaimError(INVALID_CLAIM, str(exc), None, ({"field": exc.path, "message": "duplicate key"},))
            except ValueError:
                return ClaimError(INVALID_CLAIM, "the line is not valid JSON", None)
            return prepare_claim(validate_claim(obj), tables)
        return prepare_claim(record, tables)
    except ClaimError as error:
        return error


@dataclass
class PreparedChunk:
    """A chunk of lines read and checked, its batch numbered locally (person-year keys listed)."""

    size: int
    errors: list[tuple[int, bytes]]
    """(position in the chunk, error result JSON)."""
    ids: U8
    """The ids of the batch's claims, JSON-encoded one after another: ids[id_off[i]:id_off[i + 1]]."""
    id_off: I64
    batch: ClaimBatch | None
    person_keys: list[tuple[str, int]]
    """Per local person-year row: (the normalised person id, policy year)."""
    years: list[int]
    discharged: I64 | None = None
    """Per claim of the batch: the discharge date as y·10^4 + m·100 + d (for grouping by month)."""

    def claim_id(self, i: int) -> str:
        text: str = orjson.loads(self.ids[self.id_off[i] : self.id_off[i + 1]].tobytes())
        return text


def _codes(buf: bytes, data: U8, start: I64, end: I64, into: dict[str, int]) -> I64:
    """Dictionary codes (in `into`, keyed by text) of the UTF-8 strings buf[start[i]:end[i]]; -1 where start < 0."""
    local, first = intern_spans(data, start, end)
    if first.shape[0] == 0:
        return local
    known = np.array(
        [into.setdefault(buf[start[f] : end[f]].decode("utf-8"), len(into)) for f in first.tolist()], dtype=np.int64
    )
    return np.where(local >= 0, known[local], -1)


def _recode(codes: I64, values: list[str], into: dict[str, int]) -> I64:
    """Dictionary codes into `values` as codes in `into` (keyed by text, extended); -1 stays -1."""
    if not values:
        return codes
    known = np.array([into.setdefault(v, len(into)) for v in values], dtype=np.int64)
    return np.where(codes >= 0, known[codes], -1)


def prepare_lines(buf: bytes, starts: I64, ends: I64, tables: Tables) -> PreparedChunk:
    """Lines buf[starts[k]:ends[k]] read and checked (SPEC §6 order) into one batch in input order."""
    n = int(starts.shape[0])
    data = np.frombuffer(buf, dtype=np.uint8)
    scanned = scan_lines(data, starts, ends, tables, enabled=COLUMNAR)
    ok = scanned.ok
    slow = np.flatnonzero(~ok).tolist()
    slow_lines = [buf[starts[k] : ends[k]] for k in slow]
    outcomes = [_prepare(line, tables, rec) for line, rec in zip(slow_lines, fast_records(slow_lines), strict=True)]
    pairs = list(zip(slow, outcomes, strict=True))
    errors = [(k, orjson.dumps(error_result(o))) for k, o in pairs if isinstance(o, ClaimError)]
    prepared = [(k, o) for k, o in pairs if isinstance(o, PreparedClaim)]
    included = ok.copy()
    included[[k for k, _ in prepared]] = True
    order = np.flatnonzero(included)
    m = int(order.shape[0])
    if m == 0:
        return PreparedChunk(n, errors, np.zeros(0, np.uint8), np.zeros(1, np.int64), None, [], [])

    # per line (only the lines of the batch are read): the scanner's columns, then the per-line claims'
    claim = scanned.claim
    version, age, person = scanned.version, scanned.age, scanned.person
    discharged = claim[:, 9].copy()
    year = discharged // 10_000
    scheme, visit_type, level, sessions = claim[:, 5], claim[:, 7], claim[:, 2], claim[:, 14]
    category = np.where(claim[:, 6] < 0, NONE_CATEGORY, claim[:, 6])
    item_first, item_count = claim[:, 15].copy(), claim[:, 16]
    diagnosis = np.zeros(n, dtype=np.int64)
    treatment = np.full(n, -1, dtype=np.int64)
    diag_ids: dict[str, int] = {}
    treat_ids: dict[str, int] = {}
    fast = np.flatnonzero(ok)
    diagnosis[fast] = _codes(buf, data, claim[fast, 10], claim[fast, 11], diag_ids)
    treatment[fast] = _codes(buf, data, claim[fast, 12], claim[fast, 13], treat_ids)
    id_start = np.where(ok, claim[:, 0] - 1, -1)  # with the quotes: orjson would write a scanned id as it is
    id_len = claim[:, 1] + 1 - id_start
    slow_ids: list[tuple[int, bytes]] = []
    rows, qty, price = [scanned.item_row], [scanned.item_qty], [scanned.item_price]
    pool = int(scanned.item_row.shape[0])
    flags = np.zeros(n, dtype=np.int64)  # the scanner takes only claims without any (no emergency key)
    if prepared:  # the per-line claims, gathered as the counter's are (columns_of), into their lines
        ks = np.array([k for k, _ in prepared], dtype=np.int64)
        per = columns_of([p for _, p in prepared])
        version[ks], year[ks], person[ks], age[ks] = per.version, per.policy_year, per.person, per.age
        scheme[ks], category[ks], visit_type[ks] = per.scheme, per.category, per.visit_type
        level[ks], sessions[ks] = per.level, per.sessions
        if per.flags is not None:
            flags[ks] = per.flags
        diagnosis[ks] = _recode(per.diagnosis, per.diagnosis_values, diag_ids)
        treatment[ks] = _recode(per.treatment, per.treatment_values, treat_ids)
        item_first[ks] = pool + per.line_start[:-1]
        item_count[ks] = np.diff(per.line_start)
        rows.append(per.line_item)
        qty.append(per.line_qty)
        price.append(per.line_price)
        for k, p in prepared:
            d = p.record.discharged
            discharged[k] = d.year * 10_000 + d.month * 100 + d.day
            encoded = orjson.dumps(p.record.claim_id)
            slow_ids.append((k, encoded))
            id_len[k] = len(encoded)

    # the batch, in input order
    id_off = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(id_len[order], out=id_off[1:])
    ids = np.empty(int(id_off[-1]), dtype=np.uint8)
    gather_spans(data, id_start[order], id_off, ids)
    at = {int(k): i for i, k in enumerate(order.tolist())} if slow_ids else {}
    for k, encoded in slow_ids:
        i = at[k]
        ids[id_off[i] : id_off[i + 1]] = np.frombuffer(encoded, dtype=np.uint8)
    counts = item_count[order]
    line_start = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=line_start[1:])
    pick = np.repeat(item_first[order] - line_start[:-1], counts) + np.arange(int(line_start[-1]), dtype=np.int64)
    cols = ClaimColumns(
        version=version[order],
        policy_year=year[order],
        person=person[order],
        scheme=scheme[order],
        category=category[order],
        visit_type=visit_type[order],
        level=level[order],
        age=age[order],
        sessions=sessions[order],
        diagnosis=diagnosis[order],
        treatment=treatment[order],
        flags=flags[order] if flags.any() else None,
        diagnosis_values=list(diag_ids),
        treatment_values=list(treat_ids),
        line_start=line_start,
        line_item=np.concatenate(rows)[pick],
        line_qty=np.concatenate(qty)[pick],
        line_price=np.concatenate(price)[pick],
    )
    own = number_rows(cols)
    return PreparedChunk(
        size=n,
        errors=errors,
        ids=ids,
        id_off=id_off,
        batch=build_batch(cols, own.person_year, own.year_index),
        person_keys=_person_keys(
            buf, order[own.person_first], claim[:, 3], year, {k: p.person_id for k, p in prepared}
        ),
        years=own.years,
        discharged=discharged[order],
    )


def _person_keys(buf: bytes, lines: I64, id_start: I64, year: I64, slow: dict[int, str]) -> list[tuple[str, int]]:
    """(normalised person id, policy year) of the given lines: scanned ids from buf, the others from `slow`."""
    starts = id_start[lines].tolist()
    years = year[lines].tolist()
    if not slow:
        return [(buf[s : s + 18].decode("ascii").upper(), y) for s, y in zip(starts, years, strict=True)]
    return [
        (slow[k] if k in slow else buf[s : s + 18].decode("ascii").upper(), y)
        for k, s, y in zip(lines.tolist(), starts, years, strict=True)
    ]


def prepare_chunk(lines: list[bytes] | list[str], tables: Tables) -> PreparedChunk:
    """A list of lines, one claim each (blank or not), read and checked."""
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    lengths = np.array([len(r) for r in raw], dtype=np.int64)
    ends = np.cumsum(lengths)
    return prepare_lines(b"".join(raw), ends - lengths, ends, tables)


def prepare_block(block: bytes, tables: Tables) -> PreparedChunk:
    """A block of whole lines, as read from a file, read and checked; blank lines are skipped."""
    starts, ends = split_lines(np.frombuffer(block, dtype=np.uint8))
    return prepare_lines(block, starts, ends, tables)


class StreamSettler:
    """Holds the accumulators of a run; chunks are settled one after another, in order."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.rows = BatchBuilder()
        """The run's person-year and year rows (each chunk's own rows become these: BatchBuilder.take)."""
        self.accumulators = Accumulators.zeros(0, 0, tables.n_funds)

    @property
    def person_rows(self) -> dict[tuple[str, int], int]:
        """(normalised person id, policy year) → the accumulators' person-year row."""
        return self.rows.person_rows

    @property
    def year_rows(self) -> dict[int, int]:
        """Policy year → the accumulators' pool row."""
        return self.rows.year_rows

    def settle_lines(self, lines: list[bytes] | list[str]) -> list[dict[str, Any]]:
        """Results as §6 objects (see settle_lines_json for the text)."""
        return [orjson.loads(line) for line in self.settle_lines_json(lines)]

    def settle_lines_json(self, lines: list[bytes] | list[str]) -> list[bytes]:
        """Settles the lines in order after those of earlier calls; one §6 JSON text per line."""
        return self.settle_prepared(prepare_chunk(lines, self.tables))

    def settle_prepared(self, chunk: PreparedChunk) -> list[bytes]:
        return self.settle_prepared_text(chunk).split(b"\n")[:-1]

    def settle_chunk(self, chunk: PreparedChunk) -> BatchResult | None:
        """The chunk's batch settled after every earlier chunk, as result columns (None: no claim to settle).

        The batch's local person-year and year rows become this run's rows."""
        batch = chunk.batch
        if batch is None:
            return None
        self.rows.take(batch, chunk.person_keys, chunk.years)
        self.accumulators = self.accumulators.grow(len(self.rows.person_rows), len(self.rows.year_rows))
        result = settle(batch, self.tables, self.accumulators)
        self.accumulators = result.accumulators
        return result

    def settle_prepared_text(self, chunk: PreparedChunk) -> bytes:
        """The chunk's result lines, each ended by a newline, settled after every earlier chunk."""
        plan = np.zeros(chunk.size, dtype=np.int64)
        extra = [text for _, text in chunk.errors]
        error_at = np.array([k for k, _ in chunk.errors], dtype=np.int64)
        plan[error_at] = -1 - np.arange(len(extra), dtype=np.int64)
        batch = chunk.batch
        if batch is None:
            return b"".join(text + b"\n" for text in extra)
        settled = np.ones(chunk.size, dtype=np.bool_)
        settled[error_at] = False
        at = np.flatnonzero(settled)
        plan[at] = np.arange(at.shape[0], dtype=np.int64)
        result = self.settle_chunk(chunk)
        assert result is not None
        for i in np.flatnonzero(result.error).tolist():  # the engine's own errors (no_standard)
            error = engine_error(result, batch, i, self.tables, chunk.claim_id(i))
            assert error is not None
            extra.append(orjson.dumps(error_result(error)))
            plan[at[i]] = -len(extra)
        return write_results(result, batch, self.tables, chunk.ids, chunk.id_off, plan, extra)


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for line in lines:
        if not line.strip():
            continue
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _blocks(handle: IO[bytes], size: int) -> Iterator[bytes]:
    """Blocks of whole lines (the last may lack its newline) of about `size` bytes."""
    rest = b""
    while True:
        data = handle.read(size)
        if not data:
            break
        if rest:
            data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        yield data[:cut]
        rest = data[cut:]
    if rest:
        yield rest


_worker_tables: Tables | None = None


def _init_worker(region_dir: str) -> None:
    """A forked worker has the run's tables already (_run sets them before the fork); a spawned one loads them."""
    global _worker_tables
    if _worker_tables is None or _worker_tables.schedules.region_dir != region_dir:
        from settlement.schedules import load_region_cached

        _worker_tables = compile_tables(load_region_cached(region_dir))


def _prepare_in_worker(lines: list[bytes]) -> PreparedChunk:
    assert _worker_tables is not None
    return prepare_chunk(lines, _worker_tables)


def _prepare_block_in_worker(block: bytes) -> PreparedChunk:
    assert _worker_tables is not None
    return prepare_block(block, _worker_tables)


def _prepare_range_in_worker(job: tuple[str, int, int]) -> PreparedChunk:
    assert _worker_tables is not None
    return prepare_range(job, _worker_tables)


def settle_stream(
    lines: Iterable[bytes], tables: Tables, write: Any, chunk: int = CHUNK, workers: int | None = None
) -> int:
    """Settles every non-blank line in order, writing one JSON result line each; returns the count.

    workers: processes reading chunks ahead (default: one per core). A stream
    of a single chunk is read inline: starting workers would cost more.
    """
    return _run(_chunks(lines, chunk), prepare_chunk, _prepare_in_worker, tables, write, workers)


def settle_file(
    handle: IO[bytes], tables: Tables, write: Any, block: int = BLOCK_BYTES, workers: int | None = None
) -> int:
    """settle_stream for a binary file, read in blocks of bytes that the workers split into lines.

    A regular file named by a path is not read by this process at all: each
    worker reads its own byte range (see read_range). A pipe or stdin is read
    here and its blocks are sent to the workers.
    """
    path = _file_path(handle)
    if path is not None:
        size = os.path.getsize(path)
        ranges = ((path, start, min(start + block, size)) for start in range(0, size, block))
        return _run(ranges, prepare_range, _prepare_range_in_worker, tables, write, workers)
    return _run(_blocks(handle, block), prepare_block, _prepare_block_in_worker, tables, write, workers)


def _file_path(handle: IO[bytes]) -> str | None:
    """The absolute path of a handle that is a regular file named by that path, unread so far; else None.

    stdin redirected from a file (named '<stdin>'), pipes, sockets and a handle already partly read are
    read through the handle itself.
    """
    name = getattr(handle, "name", None)
    if not isinstance(name, str) or not hasattr(os, "pread"):  # no pread on Windows
        return None
    try:
        here = os.fstat(handle.fileno())
        there = os.stat(name)
        unread = handle.tell() == 0
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if not (stat.S_ISREG(here.st_mode) and os.path.samestat(here, there) and unread):
        return None
    path = os.path.realpath(name)  # /dev/stdin → the file itself, not what a worker has as its stdin
    try:
        return path if os.path.samestat(os.stat(path), here) else None
    except OSError:
        return None


def read_range(fd: int, start: int, end: int) -> bytes:
    """The lines of a file that start at a byte in [start, end), whole (a line belongs to the range it starts in).

    Ranges that cut a file into pieces give every line exactly once, in order.
    """
    step = 1 << 16
    if start > 0:  # skip the rest of a line begun before start (none when byte start - 1 is a newline)
        pos = start - 1
        while True:
            piece = os.pread(fd, step, pos)
            if not piece:
                return b""
            newline = piece.find(b"\n")
            if newline >= 0:
                start = pos + newline + 1
                break
            pos += len(piece)
    if start >= end:
        return b""
    data = os.pread(fd, end - start, start)
    if not data or data.endswith(b"\n"):
        return data
    tail: list[bytes] = []
    pos = start + len(data)
    while True:  # finish the last line
        piece = os.pread(fd, step, pos)
        if not piece:
            break
        newline = piece.find(b"\n")
        if newline >= 0:
            tail.append(piece[: newline + 1])
            break
        tail.append(piece)
        pos += len(piece)
    return data + b"".join(tail)


_open_files: dict[str, int] = {}


def prepare_range(job: tuple[str, int, int], tables: Tables) -> PreparedChunk:
    """The lines starting in a byte range of a file (path, start, end), read and checked."""
    path, start, end = job
    fd = _open_files.get(path)
    if fd is None:
        fd = _open_files[path] = os.open(path, os.O_RDONLY)
    return prepare_block(read_range(fd, start, end), tables)


def _run(
    jobs: Iterator[T],
    prepare: Callable[[T, Tables], PreparedChunk],
    prepare_in_worker: Callable[[T], PreparedChunk],
    tables: Tables,
    write: Any,
    workers: int | None,
) -> int:
    settler = StreamSettler(tables)
    count = 0

    def emit(part: PreparedChunk) -> None:
        nonlocal count
        text = settler.settle_prepared_text(part)
        if text:
            write(text)
        count += part.size

    first = next(jobs, None)
    if first is None:
        return 0
    second = next(jobs, None)
    if workers is None:
        workers = os.cpu_count() or 1
    if second is None or workers <= 1:
        for job in _chain(first, second, jobs):
            emit(prepare(job, tables))
        return count
    from concurrent.futures import ProcessPoolExecutor  # only here: a process of one block never starts one

    global _worker_tables
    _worker_tables = tables  # inherited by forked workers
    jit.load()  # more than one block: compiled from the start
    _warm_up(tables)  # before the workers are forked: they start with the compiled code loaded
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(tables.schedules.region_dir,)) as pool:
        in_flight: deque[Future[PreparedChunk]] = deque()
        for job in _chain(first, second, jobs):
            in_flight.append(pool.submit(prepare_in_worker, job))
            if len(in_flight) > workers:  # bounded read-ahead
                emit(in_flight.popleft().result())
        while in_flight:
            emit(in_flight.popleft().result())
    return count


def _warm_up(tables: Tables) -> None:
    """Loads the compiled code (scanner, engine, writer) from numba's cache on an empty batch and a bad line."""
    prepare_block(b"{}\n", tables)
    empty = np.zeros(0, dtype=np.int64)
    batch = ClaimBatch(
        version=empty, policy_year=empty, person_year=empty, year_index=empty, scheme=empty, category=empty,
        visit_type=empty, level=empty, age=empty, sessions=empty, diagnosis=empty, treatment=empty,
        diagnosis_values=[], treatment_values=[], line_start=np.zeros(1, dtype=np.int64), line_item=empty,
        line_qty=empty, line_price=empty,
    )
    write_results(settle(batch, tables), batch, tables, np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64), empty)


def _chain(first: T, second: T | None, rest: Iterator[T]) -> Iterator[T]:
    yield first
    if second is not None:
        yield second
        yield from rest
