"""Settling a stream of JSON lines in order: the job behind `settlement settle`.

Lines are read in chunks. Reading a chunk — decoding, validating, the person
id, schedule and catalog checks, building the columnar batch — depends on
nothing but the chunk, so worker processes do it ahead, in parallel
(`prepare_chunk`). Settling depends on every earlier claim, so the main
process settles the chunks strictly in input order (`StreamSettler.settle_prepared`),
carrying the accumulators from chunk to chunk, and writes each chunk's results
before the next. Memory stays bounded by the chunks in flight, whatever the
length of the stream. With one worker the same two functions run inline.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from settlement.claims import (
    INVALID_CLAIM,
    BatchBuilder,
    ClaimError,
    PreparedClaim,
    decode_json,
    prepare_claim,
    validate_claim,
)
from settlement.claims.fast import fast_records
from settlement.claims.record import ClaimRecord
from settlement.engine import Accumulators, ClaimBatch, Tables, compile_tables, settle
from settlement.results import error_result, result_lines
from settlement.schedules import load_region

CHUNK = 20_000


def _prepare(line: bytes | str, tables: Tables, record: ClaimRecord | None = None) -> PreparedClaim | ClaimError:
    """One line through the checks of SPEC §6; `record` when the fast path already read it."""
    try:
        if record is None:
            try:
                obj = decode_json(line)
            except ValueError:
                return ClaimError(INVALID_CLAIM, "the line is not valid JSON", None)
            return prepare_claim(validate_claim(obj), tables)
        return prepare_claim(record, tables)
    except ClaimError as error:
        return error


@dataclass
class PreparedChunk:
    """A chunk read and checked, its batch numbered locally (person-year keys listed)."""

    size: int
    errors: list[tuple[int, bytes]]
    """(position in the chunk, error result JSON)."""
    claim_ids: list[str]
    batch: ClaimBatch | None
    person_keys: list[tuple[str, int]]
    years: list[int]


def prepare_chunk(lines: list[bytes] | list[str], tables: Tables) -> PreparedChunk:
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    outcomes = [_prepare(line, tables, record) for line, record in zip(raw, fast_records(raw), strict=True)]
    prepared = [o for o in outcomes if isinstance(o, PreparedClaim)]
    errors = [(k, orjson.dumps(error_result(o))) for k, o in enumerate(outcomes) if isinstance(o, ClaimError)]
    builder = BatchBuilder()
    batch = builder.build(prepared) if prepared else None
    return PreparedChunk(
        size=len(raw),
        errors=errors,
        claim_ids=[p.record.claim_id for p in prepared],
        batch=batch,
        person_keys=list(builder.person_rows),
        years=list(builder.year_rows),
    )


class StreamSettler:
    """Holds the accumulators of a run; chunks are settled one after another, in order."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.person_rows: dict[tuple[str, int], int] = {}
        self.year_rows: dict[int, int] = {}
        self.accumulators = Accumulators.zeros(0, 0, tables.n_funds)

    def settle_lines(self, lines: list[bytes] | list[str]) -> list[dict[str, Any]]:
        """Results as §6 objects (see settle_lines_json for the text)."""
        return [orjson.loads(line) for line in self.settle_lines_json(lines)]

    def settle_lines_json(self, lines: list[bytes] | list[str]) -> list[bytes]:
        """Settles the lines in order after those of earlier calls; one §6 JSON text per line."""
        return self.settle_prepared(prepare_chunk(lines, self.tables))

    def settle_prepared(self, chunk: PreparedChunk) -> list[bytes]:
        settled: list[bytes] = []
        if chunk.batch is not None:
            batch = chunk.batch
            # local person-year and year rows → this run's rows
            person_map = np.array(
                [self.person_rows.setdefault(key, len(self.person_rows)) for key in chunk.person_keys], dtype=np.int64
            )
            year_map = np.array(
                [self.year_rows.setdefault(year, len(self.year_rows)) for year in chunk.years], dtype=np.int64
            )
            batch.person_year = person_map[batch.person_year]
            batch.year_index = year_map[batch.year_index]
            self.accumulators = self.accumulators.grow(len(self.person_rows), len(self.year_rows))
            result = settle(batch, self.tables, self.accumulators)
            self.accumulators = result.accumulators
            settled = result_lines(result, batch, self.tables, chunk.claim_ids)
        out: list[bytes] = []
        errors = iter(chunk.errors)
        next_error = next(errors, None)
        ok = iter(settled)
        for k in range(chunk.size):
            if next_error is not None and next_error[0] == k:
                out.append(next_error[1])
                next_error = next(errors, None)
            else:
                out.append(next(ok))
        return out


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


_worker_tables: Tables | None = None


def _init_worker(region_dir: str) -> None:
    global _worker_tables
    _worker_tables = compile_tables(load_region(region_dir))


def _prepare_in_worker(lines: list[bytes]) -> PreparedChunk:
    assert _worker_tables is not None
    return prepare_chunk(lines, _worker_tables)


def settle_stream(
    lines: Iterable[bytes], tables: Tables, write: Any, chunk: int = CHUNK, workers: int | None = None
) -> int:
    """Settles every non-blank line in order, writing one JSON result line each; returns the count.

    workers: processes reading chunks ahead (default: one per core). A stream
    of a single chunk is read inline: starting workers would cost more.
    """
    settler = StreamSettler(tables)
    count = 0

    def emit(part: PreparedChunk) -> None:
        nonlocal count
        out = settler.settle_prepared(part)
        write(b"\n".join(out) + b"\n")
        count += len(out)

    chunks = _chunks(lines, chunk)
    first = next(chunks, None)
    if first is None:
        return 0
    second = next(chunks, None)
    if workers is None:
        workers = os.cpu_count() or 1
    if second is None or workers <= 1:
        for part in _chain(first, second, chunks):
            emit(prepare_chunk(part, tables))
        return count
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(tables.schedules.region_dir,)) as pool:
        in_flight: deque[Future[PreparedChunk]] = deque()
        for part in _chain(first, second, chunks):
            in_flight.append(pool.submit(_prepare_in_worker, part))
            if len(in_flight) > workers:  # bounded read-ahead
                emit(in_flight.popleft().result())
        while in_flight:
            emit(in_flight.popleft().result())
    return count


def _chain(first: list[bytes], second: list[bytes] | None, rest: Iterator[list[bytes]]) -> Iterator[list[bytes]]:
    yield first
    if second is not None:
        yield second
        yield from rest
