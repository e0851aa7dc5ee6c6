"""The one ClaimBatch builder: claims as columns → the engine's batch, its person-years numbered.

Every batch is built by :func:`build_batch`: the CLI's blocks (`batchrun.prepare_lines` gathers the
scanner's columns and the per-line readers' claims into :class:`ClaimColumns`) and the prepared claims
of the counter, the service and the tests (:func:`columns_of`, through :class:`BatchBuilder`). A
batch numbers its own person-year and year rows on first sight; :class:`BatchBuilder` makes them a
run's rows, numbered on first sight across batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import numpy.typing as npt

from settlement.engine.batch import UNIDENTIFIED, ClaimBatch, claim_flags
from settlement.jit import kernel
from settlement.schedules.types import CATEGORIES, SCHEMES, VISIT_TYPES

from .parse import PreparedClaim

I64 = npt.NDArray[np.int64]

_SCHEME_IX = {s: i for i, s in enumerate(SCHEMES)}
_CATEGORY_IX = {c: i for i, c in enumerate(CATEGORIES)}
_VISIT_TYPE_IX = {v: i for i, v in enumerate(VISIT_TYPES)}


@dataclass
class ClaimColumns:
    """Per claim, in batch order, the values of a ClaimBatch but its rows (see ClaimBatch for each)."""

    version: I64
    policy_year: I64
    person: I64
    """The person id as a number (17 digits × 11 + check value: `person_number`); any value for an
    unidentified patient (flags), who has no person-year row."""
    scheme: I64
    category: I64
    visit_type: I64
    level: I64
    age: I64
    sessions: I64
    diagnosis: I64
    treatment: I64
    flags: I64 | None
    """None: no claim has any (as ClaimBatch.flags)."""
    diagnosis_values: list[str]
    treatment_values: list[str]
    line_start: I64
    line_item: I64
    line_qty: I64
    line_price: I64


@dataclass
class BatchRows:
    """A batch's own person-year and year rows, numbered on first sight (number_rows)."""

    person_year: I64
    year_index: I64
    person_first: I64
    """Per person-year row: the claim that first has it (the row's person and policy year)."""
    years: list[int]
    """Per year row: the policy year."""


@kernel
def _number_rows(
    person: I64, year: I64, flags: I64, person_year: I64, year_index: I64, person_first: I64, year_first: I64,
) -> tuple[int, int]:
    """Numbers (person, year) pairs and years on first sight: person_year[i] (-1 for an unidentified
    patient), year_index[i], and the first claim of each row. Returns (person-year rows, year rows)."""
    n = person.shape[0]
    size = 16
    while size < 2 * n + 2:
        size *= 2
    mask = size - 1
    slots = np.full(size, -1, dtype=np.int64)
    rows = 0
    years = 0
    for i in range(n):
        y = year[i]
        at = -1
        for r in range(years):  # a batch has a few policy years
            if year[year_first[r]] == y:
                at = r
                break
        if at < 0:
            at = years
            year_first[years] = i
            years += 1
        year_index[i] = at
        if flags[i] & UNIDENTIFIED:
            person_year[i] = -1
            continue
        p = person[i]
        slot = ((p % 2_147_483_647) * 48_271 + y) & mask  # no overflow in either form
        while True:
            r = slots[slot]
            if r < 0:
                slots[slot] = rows
                person_first[rows] = i
                person_year[i] = rows
                rows += 1
                break
            f = person_first[r]
            if person[f] == p and year[f] == y:
                person_year[i] = r
                break
            slot = (slot + 1) & mask
    return rows, years


def number_rows(cols: ClaimColumns) -> BatchRows:
    """The batch's own person-year and year rows, numbered on first sight (a run's rows: BatchBuilder.take)."""
    n = int(cols.version.shape[0])
    person_year = np.empty(n, dtype=np.int64)
    year_index = np.empty(n, dtype=np.int64)
    person_first = np.empty(n, dtype=np.int64)
    year_first = np.empty(n, dtype=np.int64)
    flags = cols.flags if cols.flags is not None else np.zeros(n, dtype=np.int64)
    rows, years = _number_rows(cols.person, cols.policy_year, flags, person_year, year_index, person_first, year_first)
    return BatchRows(person_year, year_index, person_first[:rows], cols.policy_year[year_first[:years]].tolist())


def build_batch(cols: ClaimColumns, person_year: I64, year_index: I64) -> ClaimBatch:
    """The ClaimBatch of the columns, in the person-year and year rows given (ClaimBatch's meaning)."""
    return ClaimBatch(
        version=cols.version,
        policy_year=cols.policy_year,
        person_year=person_year,
        year_index=year_index,
        scheme=cols.scheme,
        category=cols.category,
        visit_type=cols.visit_type,
        level=cols.level,
        age=cols.age,
        sessions=cols.sessions,
        diagnosis=cols.diagnosis,
        treatment=cols.treatment,
        diagnosis_values=cols.diagnosis_values,
        treatment_values=cols.treatment_values,
        line_start=cols.line_start,
        line_item=cols.line_item,
        line_qty=cols.line_qty,
        line_price=cols.line_price,
        flags=cols.flags,
    )


def person_number(person_id: str) -> int:
    """A checked, normalised person id as the number the scanner computes (claims.checks.person_number)."""
    return int(person_id[:17]) * 11 + (10 if person_id[17] == "X" else int(person_id[17]))


def columns_of(prepared: list[PreparedClaim]) -> ClaimColumns:
    """Prepared claims gathered into columns, in their order."""
    return _gather(prepared, {}, {})[0]


def _gather(
    prepared: list[PreparedClaim], person_rows: dict[tuple[str, int], int], year_rows: dict[int, int]
) -> tuple[ClaimColumns, I64, I64]:
    """The columns of the prepared claims, and their person-year and year rows in the dicts given (numbered
    on first sight, in the same pass: the counter builds a batch of one claim per request)."""
    n = len(prepared)
    diag_ids: dict[str, int] = {}
    treat_ids: dict[str, int] = {}
    rows: list[tuple[int, ...]] = []
    for p in prepared:
        r = p.record
        unidentified = r.unidentified
        year = r.discharged.year
        rows.append((
            p.version,
            year,
            -1 if unidentified else person_number(p.person_id),
            0 if unidentified else _SCHEME_IX[p.scheme],
            0 if unidentified else _CATEGORY_IX[p.category],
            _VISIT_TYPE_IX[r.visit_type],
            p.level,
            p.age,
            r.sessions,
            diag_ids.setdefault(r.diagnosis, len(diag_ids)),
            -1 if r.treatment is None else treat_ids.setdefault(r.treatment, len(treat_ids)),
            claim_flags(r.emergency, r.unable_to_pay, unidentified),
            len(p.items),
            -1 if unidentified else person_rows.setdefault((p.person_id, year), len(person_rows)),
            year_rows.setdefault(year, len(year_rows)),
        ))
    cols = np.array(rows, dtype=np.int64).reshape(n, 15).T
    line_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cols[12], out=line_start[1:])
    total = int(line_start[-1])
    columns = ClaimColumns(
        version=cols[0],
        policy_year=cols[1],
        person=cols[2],
        scheme=cols[3],
        category=cols[4],
        visit_type=cols[5],
        level=cols[6],
        age=cols[7],
        sessions=cols[8],
        diagnosis=cols[9],
        treatment=cols[10],
        flags=cols[11],
        diagnosis_values=list(diag_ids),
        treatment_values=list(treat_ids),
        line_start=line_start,
        line_item=np.fromiter(chain.from_iterable(p.items for p in prepared), np.int64, total),
        line_qty=_concat([p.record.quantity for p in prepared]),
        line_price=_concat([p.record.unit_price for p in prepared]),
    )
    return columns, cols[13], cols[14]


def _concat(parts: list[I64]) -> I64:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@dataclass
class BatchBuilder:
    """A run's person-year and year rows, numbered on first sight across batches, so that a caller
    settling batch after batch can carry one Accumulators through (see Accumulators.grow).

    `build` makes prepared claims a batch in the run's rows; `take` makes a batch numbered in its own rows
    (number_rows: the CLI's blocks, batchrun.StreamSettler) one in the run's, numbered alike. An
    unidentified patient has no person-year row (-1).
    """

    person_rows: dict[tuple[str, int], int] = field(default_factory=dict)
    year_rows: dict[int, int] = field(default_factory=dict)

    def build(self, prepared: list[PreparedClaim]) -> ClaimBatch:
        columns, person_year, year_index = _gather(prepared, self.person_rows, self.year_rows)
        return build_batch(columns, person_year, year_index)

    def take(self, batch: ClaimBatch, person_keys: list[tuple[str, int]], years: list[int]) -> None:
        """The batch's own rows (person_keys[r]: its row r's normalised person id and policy year; years[r]
        its year row r's policy year) become the run's, in place."""
        rows = self.person_rows
        person_map = np.array([rows.setdefault(key, len(rows)) for key in person_keys], dtype=np.int64)
        year_map = np.array([self.year_rows.setdefault(y, len(self.year_rows)) for y in years], dtype=np.int64)
        if batch.flags is None:
            batch.person_year = person_map[batch.person_year]
        else:  # unidentified patients keep -1: no person-year row
            batch.person_year = np.where(batch.person_year >= 0, np.append(person_map, -1)[batch.person_year], -1)
        batch.year_index = year_map[batch.year_index]
