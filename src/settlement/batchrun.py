"""Settling a stream of JSON lines in order: the job behind `settlement settle`.

Lines are read in chunks; each chunk is validated, settled as one columnar
batch, and written out before the next is read, with the accumulators
carried from chunk to chunk. Memory stays bounded by the chunk, whatever the
length of the stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

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
from settlement.engine import Accumulators, Tables, settle
from settlement.results import error_result, result_lines

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


class StreamSettler:
    """Holds the accumulators of a run; `settle_lines` may be called chunk after chunk."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.builder = BatchBuilder()
        self.accumulators = Accumulators.zeros(0, 0, tables.n_funds)

    def settle_lines(self, lines: list[bytes] | list[str]) -> list[dict[str, Any]]:
        """Results as §6 objects (see settle_lines_json for the text)."""
        return [orjson.loads(line) for line in self.settle_lines_json(lines)]

    def settle_lines_json(self, lines: list[bytes] | list[str]) -> list[bytes]:
        """Settles the lines in order after those of earlier calls; one §6 JSON text per line."""
        raw = [line.encode() if isinstance(line, str) else line for line in lines]
        outcomes = [
            _prepare(line, self.tables, record)
            for line, record in zip(raw, fast_records(raw), strict=True)
        ]
        prepared = [o for o in outcomes if isinstance(o, PreparedClaim)]
        results: list[bytes] = []
        if prepared:
            batch = self.builder.build(prepared)
            self.accumulators = self.accumulators.grow(
                len(self.builder.person_rows), len(self.builder.year_rows)
            )
            result = settle(batch, self.tables, self.accumulators)
            self.accumulators = result.accumulators
        settled = iter(
            result_lines(result, batch, self.tables, [p.record.claim_id for p in prepared]) if prepared else []
        )
        for outcome in outcomes:
            results.append(orjson.dumps(error_result(outcome)) if isinstance(outcome, ClaimError) else next(settled))
        return results


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


def settle_stream(lines: Iterable[bytes], tables: Tables, write: Any, chunk: int = CHUNK) -> int:
    """Settles every non-blank line in order, writing one JSON result line each; returns the count."""
    settler = StreamSettler(tables)
    count = 0
    for part in _chunks(lines, chunk):
        out = settler.settle_lines_json(part)
        write(b"\n".join(out) + b"\n")
        count += len(out)
    return count
