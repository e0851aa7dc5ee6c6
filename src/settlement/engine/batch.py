"""Columnar claims, accumulators and results: the engine's data at rest.

A batch is a set of parallel int64 arrays, one entry per claim, plus the
lines of all claims concatenated (claim i owns lines line_start[i] to
line_start[i+1]). Strings (diagnosis, treatment) are dictionary-encoded so the
rules can be evaluated once per distinct value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from .totals import FIELDS, LAYOUT, PERSON_COLUMNS

I64 = npt.NDArray[np.int64]
B8 = npt.NDArray[np.bool_]

# error codes the engine itself can raise (the claim parser raises the rest)
OK = 0
NO_STANDARD = 1

# ClaimBatch.flags: the claim's emergency-relief declarations (SPEC §3), as bits
EMERGENCY = 1
"""visit.emergency"""
UNABLE_TO_PAY = 2
"""patient.unable_to_pay"""
UNIDENTIFIED = 4
"""An unidentified patient: no person-year row, scheme, category or age."""


def claim_flags(emergency: bool, unable_to_pay: bool, unidentified: bool) -> int:
    return EMERGENCY * emergency + UNABLE_TO_PAY * unable_to_pay + UNIDENTIFIED * unidentified


@dataclass
class ClaimBatch:
    version: I64
    """Index of the schedule version in force on the discharge date."""
    policy_year: I64
    person_year: I64
    """Dense index of the (person, policy year) accumulator row; -1 for an unidentified patient."""
    year_index: I64
    """Dense index of the pool row (policy year)."""
    scheme: I64
    category: I64
    visit_type: I64
    level: I64
    age: I64
    sessions: I64
    diagnosis: I64
    """Index into diagnosis_values."""
    treatment: I64
    """Index into treatment_values; -1 when the claim has no treatment."""
    diagnosis_values: list[str]
    treatment_values: list[str]
    line_start: I64
    """n + 1 offsets into the line arrays."""
    line_item: I64
    """Global catalog row (Tables.catalog_rows)."""
    line_qty: I64
    """Quantity × 10^4."""
    line_price: I64
    """Unit price in yuan × 10^4."""
    flags: I64 | None = None
    """EMERGENCY | UNABLE_TO_PAY | UNIDENTIFIED bits per claim; None: no claim has any."""

    def __len__(self) -> int:
        return int(self.version.shape[0])

    def claim_flags(self) -> I64:
        """The flags column, zeros when the batch has none."""
        return self.flags if self.flags is not None else np.zeros(len(self), dtype=np.int64)


@dataclass
class Accumulators:
    """Per person-year and per fund-year running totals, in fen.

    Rows are addressed by ClaimBatch.person_year and ClaimBatch.year_index;
    fund columns follow ScheduleSet.fund_ids. pool_used has one more column,
    the last: the emergency relief fund's pool (SPEC §5.5), which has no
    per-person column.
    """

    basic_paid: I64  # [person_year, visit type]
    critical_base: I64
    critical_paid: I64
    assistance_base: I64
    assistance_paid: I64
    charity_paid: I64  # [person_year, fund]
    pool_used: I64  # [year, fund + 1]; the last column: emergency relief
    person: I64 | None = field(default=None, repr=False)
    """The array the person-year fields above are views of (see :meth:`interleaved`), if any."""

    @classmethod
    def interleaved(cls, person: I64, pool_used: I64) -> Accumulators:
        """The person-year totals as views of one array, one row per person-year (columns: engine.totals).

        The kernel settles claims in batch order, so it reads and writes the
        person-years at random: in separate arrays that is a cache miss per
        total a claim, in one row of ``PERSON_COLUMNS + funds`` int64 one or
        two (docs/PERFORMANCE.md §7.1, step 6).
        """
        if person.ndim != 2 or person.shape[1] < PERSON_COLUMNS + 1:
            raise ValueError(f"person-year rows need {PERSON_COLUMNS} + fund columns, not {person.shape}")
        if pool_used.ndim != 2 or pool_used.shape[1] != person.shape[1] - PERSON_COLUMNS + 1:
            raise ValueError(f"pool rows need the fund columns + emergency relief, not {pool_used.shape}")
        views = {name: person[:, place] for name, place in LAYOUT.items()}
        return cls(**views, charity_paid=person[:, PERSON_COLUMNS:], pool_used=pool_used, person=person)

    @classmethod
    def zeros(cls, person_years: int, years: int, funds: int) -> Accumulators:
        return cls.interleaved(
            np.zeros((person_years, PERSON_COLUMNS + max(funds, 1)), dtype=np.int64),
            np.zeros((years, max(funds, 1) + 1), dtype=np.int64),
        )

    @property
    def emergency_pool_used(self) -> I64:
        """[year]: what the emergency relief fund has paid in each policy year."""
        return self.pool_used[:, -1]

    def grow(self, person_years: int, years: int) -> Accumulators:
        """The same totals with room for more rows (new rows start at zero), interleaved."""
        rows = max(person_years, self.charity_paid.shape[0])
        year_rows = max(years, self.pool_used.shape[0])
        if self.person is not None and (rows, year_rows) == (self.person.shape[0], self.pool_used.shape[0]):
            return self
        grown = Accumulators.zeros(rows, year_rows, self.charity_paid.shape[1])
        for name in _ARRAYS:
            old = getattr(self, name)
            getattr(grown, name)[: old.shape[0]] = old
        return grown

    def copy(self) -> Accumulators:
        if self.person is not None:
            return Accumulators.interleaved(self.person.copy(), self.pool_used.copy())
        return Accumulators(**{name: getattr(self, name).copy() for name in _ARRAYS})

    def person_values(self, row: int) -> list[int]:
        """One person-year's totals in the order of engine.totals.TOTALS (charity apart); interleaved only."""
        return self._person()[row, :PERSON_COLUMNS].tolist()  # type: ignore[no-any-return]

    def set_person_values(self, row: int, values: list[int]) -> None:
        """Sets one person-year's totals, given in the order of engine.totals.TOTALS; interleaved only."""
        if len(values) != PERSON_COLUMNS:
            raise ValueError(f"{len(values)} values for the {PERSON_COLUMNS} totals of engine.totals.TOTALS")
        self._person()[row, :PERSON_COLUMNS] = values

    def _person(self) -> I64:
        if self.person is None:
            raise ValueError("these accumulators are separate arrays, not interleaved rows (Accumulators.interleaved)")
        return self.person


_ARRAYS = (*FIELDS, "charity_paid", "pool_used")
"""Accumulators' arrays, in its fields' order."""
if tuple(f.name for f in fields(Accumulators))[: len(_ARRAYS)] != _ARRAYS:
    raise RuntimeError("engine.batch.Accumulators' person-year fields are not engine.totals.FIELDS, in order")


@dataclass
class BatchResult:
    error: I64
    """OK, or NO_STANDARD (the claim changed nothing)."""
    error_standard_group: I64
    """For NO_STANDARD: the group index whose standards did not fit."""
    pathway_fixed: B8
    group: I64
    """Diagnosis group index within the claim's version, -1 for none."""
    standard: I64
    """Standard index within the group, -1 on the standard pathway."""
    total: I64
    fully_self_paid: I64
    over_limit: I64
    pre_self_paid: I64
    in_scope: I64
    deductible: I64
    base: I64
    basic: I64
    critical_illness: I64
    medical_assistance: I64
    charity: I64
    charity_by_fund: I64  # [claim, fund]
    charity_eligible: B8  # [claim, fund]
    charity_pool_bound: B8 | None  # [claim, fund]
    """Where the fund's pool room decided the claim's charity (the kernel's clamp; a tie included).
    With the trace only (None without): the counter's batch of one asks for both."""
    emergency_relief: I64
    emergency_relief_pool_bound: B8 | None
    """Where the emergency relief pool's room decided the claim's amount; with the trace only."""
    backstop: I64
    patient_pays: I64
    hospital_bears: I64
    accumulators: Accumulators
    trace: I64 | None = field(default=None)

    def __len__(self) -> int:
        return int(self.error.shape[0])
