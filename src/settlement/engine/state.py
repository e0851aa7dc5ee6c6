"""Named accumulators of one person-year and the pools of one year.

The service keeps these in database rows; the counter turns them into a
one-row :class:`Accumulators` for a batch of one and reads them back after,
so that the database never needs to know the engine's array layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from settlement.schedules.types import VISIT_TYPES

from .batch import Accumulators
from .totals import FIELDS, KEYS, LAYOUT, TOTALS

EMERGENCY_RELIEF = "emergency_relief"
"""The emergency relief fund's pool, named like a charity fund's in the named pools below."""


@dataclass
class PersonYearTotals:
    """Running totals of one person in one policy year, in fen (the fields of engine.totals)."""

    basic_paid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VISIT_TYPES, 0))
    critical_base: int = 0
    critical_paid: int = 0
    assistance_base: int = 0
    assistance_paid: int = 0
    charity_paid: dict[str, int] = field(default_factory=dict)

    def minus(self, other: PersonYearTotals) -> PersonYearTotals:
        """Total-by-total difference: what one settlement added (its contribution)."""
        named: dict[str, Any] = {}
        for name, keys in _SHAPE:
            a, b = getattr(self, name), getattr(other, name)
            named[name] = a - b if keys is None else {k: a.get(k, 0) - b.get(k, 0) for k in keys}
        funds = set(self.charity_paid) | set(other.charity_paid)
        charity = {f: self.charity_paid.get(f, 0) - other.charity_paid.get(f, 0) for f in sorted(funds)}
        return PersonYearTotals(**named, charity_paid=charity)


if tuple(f.name for f in fields(PersonYearTotals)) != (*FIELDS, "charity_paid"):
    raise RuntimeError("engine.state.PersonYearTotals' fields are not engine.totals.FIELDS, in order")


def totals_values(t: PersonYearTotals) -> list[int]:
    """The totals in the order of engine.totals.TOTALS (charity apart); a missing key is 0."""
    out: list[int] = []
    for name, keys in _SHAPE:
        value = getattr(t, name)
        if keys is None:
            out.append(value)
        else:
            out.extend([value.get(k, 0) for k in keys])
    return out


def totals_from_values(values: Sequence[int], charity: dict[str, int]) -> PersonYearTotals:
    """The totals given in the order of engine.totals.TOTALS, and the charity paid per fund."""
    if len(values) != len(TOTALS):
        raise ValueError(f"{len(values)} values for the {len(TOTALS)} totals of engine.totals.TOTALS")
    named: dict[str, Any] = {
        name: values[place] if isinstance(place, int) else dict(zip(KEYS[name], values[place], strict=True))
        for name, place in LAYOUT.items()
    }
    return PersonYearTotals(**named, charity_paid=charity)


_SHAPE = tuple((name, KEYS.get(name)) for name in FIELDS)
"""Each field and its keys (None: one total), in row order."""


def totals_json(t: PersonYearTotals, convert: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """The totals as JSON members, field -> value or -> {key: value} (engine.totals order, charity apart),
    each value convert(value) if given: the settlement's contribution and accumulators_after."""
    out: dict[str, Any] = {}
    for name, keys in _SHAPE:
        value = getattr(t, name)
        if convert is None:
            out[name] = value if keys is None else {k: value.get(k, 0) for k in keys}
        else:
            out[name] = convert(value) if keys is None else {k: convert(value.get(k, 0)) for k in keys}
    return out


def one_row(person: PersonYearTotals, pool_used: dict[str, int], fund_ids: tuple[str, ...]) -> Accumulators:
    """Accumulators for a batch whose claims all use person-year row 0 and year row 0.

    pool_used names the charity funds' pools and EMERGENCY_RELIEF's."""
    acc = Accumulators.zeros(1, 1, len(fund_ids))
    acc.set_person_values(0, totals_values(person))
    for col, fund_id in enumerate(fund_ids):
        acc.charity_paid[0, col] = person.charity_paid.get(fund_id, 0)
        acc.pool_used[0, col] = pool_used.get(fund_id, 0)
    acc.pool_used[0, -1] = pool_used.get(EMERGENCY_RELIEF, 0)
    return acc


def read_row(
    acc: Accumulators, fund_ids: tuple[str, ...], person_row: int = 0, year_row: int = 0
) -> tuple[PersonYearTotals, dict[str, int]]:
    """The named totals of one person-year row and the pools of one year row."""
    person = totals_from_values(
        acc.person_values(person_row),
        {f: int(acc.charity_paid[person_row, col]) for col, f in enumerate(fund_ids)},
    )
    pools = {f: int(acc.pool_used[year_row, col]) for col, f in enumerate(fund_ids)}
    pools[EMERGENCY_RELIEF] = int(acc.pool_used[year_row, -1])
    return person, pools


__all__ = [
    "EMERGENCY_RELIEF",
    "PersonYearTotals",
    "one_row",
    "read_row",
    "totals_from_values",
    "totals_json",
    "totals_values",
]
