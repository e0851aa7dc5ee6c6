"""Named accumulators of one person-year and the pools of one year.

The service keeps these in database rows; the counter turns them into a
one-row :class:`Accumulators` for a batch of one and reads them back after,
so that the database never needs to know the engine's array layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from settlement.schedules.types import VISIT_TYPES

from .batch import Accumulators

EMERGENCY_RELIEF = "emergency_relief"
"""The emergency relief fund's pool, named like a charity fund's in the named pools below."""


@dataclass
class PersonYearTotals:
    """Running totals of one person in one policy year, in fen."""

    basic_paid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VISIT_TYPES, 0))
    critical_base: int = 0
    critical_paid: int = 0
    assistance_base: int = 0
    assistance_paid: int = 0
    charity_paid: dict[str, int] = field(default_factory=dict)

    def minus(self, other: PersonYearTotals) -> PersonYearTotals:
        """Field-by-field difference: what one settlement added (its contribution)."""
        funds = set(self.charity_paid) | set(other.charity_paid)
        return PersonYearTotals(
            basic_paid={k: self.basic_paid.get(k, 0) - other.basic_paid.get(k, 0) for k in VISIT_TYPES},
            critical_base=self.critical_base - other.critical_base,
            critical_paid=self.critical_paid - other.critical_paid,
            assistance_base=self.assistance_base - other.assistance_base,
            assistance_paid=self.assistance_paid - other.assistance_paid,
            charity_paid={f: self.charity_paid.get(f, 0) - other.charity_paid.get(f, 0) for f in sorted(funds)},
        )


def one_row(person: PersonYearTotals, pool_used: dict[str, int], fund_ids: tuple[str, ...]) -> Accumulators:
    """Accumulators for a batch whose claims all use person-year row 0 and year row 0.

    pool_used names the charity funds' pools and EMERGENCY_RELIEF's."""
    acc = Accumulators.zeros(1, 1, len(fund_ids))
    for k, vt in enumerate(VISIT_TYPES):
        acc.basic_paid[0, k] = person.basic_paid.get(vt, 0)
    acc.critical_base[0] = person.critical_base
    acc.critical_paid[0] = person.critical_paid
    acc.assistance_base[0] = person.assistance_base
    acc.assistance_paid[0] = person.assistance_paid
    for col, fund_id in enumerate(fund_ids):
        acc.charity_paid[0, col] = person.charity_paid.get(fund_id, 0)
        acc.pool_used[0, col] = pool_used.get(fund_id, 0)
    acc.pool_used[0, -1] = pool_used.get(EMERGENCY_RELIEF, 0)
    return acc


def read_row(
    acc: Accumulators, fund_ids: tuple[str, ...], person_row: int = 0, year_row: int = 0
) -> tuple[PersonYearTotals, dict[str, int]]:
    """The named totals of one person-year row and the pools of one year row."""
    person = PersonYearTotals(
        basic_paid={vt: int(acc.basic_paid[person_row, k]) for k, vt in enumerate(VISIT_TYPES)},
        critical_base=int(acc.critical_base[person_row]),
        critical_paid=int(acc.critical_paid[person_row]),
        assistance_base=int(acc.assistance_base[person_row]),
        assistance_paid=int(acc.assistance_paid[person_row]),
        charity_paid={f: int(acc.charity_paid[person_row, col]) for col, f in enumerate(fund_ids)},
    )
    pools = {f: int(acc.pool_used[year_row, col]) for col, f in enumerate(fund_ids)}
    pools[EMERGENCY_RELIEF] = int(acc.pool_used[year_row, -1])
    return person, pools


__all__ = ["EMERGENCY_RELIEF", "PersonYearTotals", "one_row", "read_row"]
