"""The person-year running totals, declared once.

Each total is one int64 column of the engine's interleaved person-year row
(:class:`settlement.engine.batch.Accumulators`), one field (or one sub-key of a
per-visit-type field) of :class:`settlement.engine.state.PersonYearTotals`, one
column of ``person_year_accumulators`` and one key of the settlement's
``contribution`` / ``accumulators_after`` JSON. Everything that lists the totals
is generated from :data:`TOTALS`, in its order: the row layout, the ORM table,
the repository's SQL, the PL/pgSQL of the counter, the audit. Adding a total is
one line here, a migration adding its column and the rule in the kernel
(docs/ARCHITECTURE.md, "A running total"). Charity per fund is a separate table.
"""

from __future__ import annotations

from typing import NamedTuple

from settlement.schedules.types import VISIT_TYPES


class Total(NamedTuple):
    column: str
    """The column of person_year_accumulators."""
    field: str
    """The field of PersonYearTotals and Accumulators (and the JSON key)."""
    key: str | None
    """The sub-key (a visit type) when the field holds one total per key, else None."""
    layer: str
    """The payment layer it belongs to: a key limited to funds sees it only if it holds this one."""


TOTALS: tuple[Total, ...] = (
    *(Total(f"basic_paid_{vt}", "basic_paid", vt, "basic") for vt in VISIT_TYPES),
    Total("critical_base", "critical_base", None, "critical_illness"),
    Total("critical_paid", "critical_paid", None, "critical_illness"),
    Total("assistance_base", "assistance_base", None, "medical_assistance"),
    Total("assistance_paid", "assistance_paid", None, "medical_assistance"),
)
"""The totals in the order of the interleaved row's columns (a field's keys side by side)."""

COLUMNS: tuple[str, ...] = tuple(t.column for t in TOTALS)
PERSON_COLUMNS = len(TOTALS)
"""Columns of an interleaved person-year row before the charity funds'."""


def _layout() -> dict[str, slice | int]:
    layout: dict[str, slice | int] = {}
    for i, t in enumerate(TOTALS):
        if any(o.field == t.field and o.layer != t.layer for o in TOTALS):
            raise ValueError(f"engine.totals.TOTALS: the totals of {t.field!r} belong to different layers")
        place = layout.get(t.field)
        if place is None:
            layout[t.field] = slice(i, i + 1) if t.key is not None else i
        elif isinstance(place, slice) and t.key is not None and place.stop == i:
            layout[t.field] = slice(place.start, i + 1)
        else:
            raise ValueError(f"engine.totals.TOTALS: {t.column} is not next to the other totals of {t.field!r}")
    return layout


LAYOUT: dict[str, slice | int] = _layout()
"""Field -> its columns in the interleaved row: a slice (one column per key) or one column."""
FIELDS: tuple[str, ...] = tuple(LAYOUT)
"""The fields, in row order."""
KEYS: dict[str, tuple[str, ...]] = {
    f: tuple(t.key for t in TOTALS if t.field == f and t.key is not None)
    for f, place in LAYOUT.items()
    if isinstance(place, slice)
}
"""The sub-keys of each per-key field, in row order."""
FIELD_LAYERS: dict[str, str] = {t.field: t.layer for t in TOTALS}
"""Field -> the payment layer it belongs to."""


__all__ = ["COLUMNS", "FIELDS", "FIELD_LAYERS", "KEYS", "LAYOUT", "PERSON_COLUMNS", "TOTALS", "Total"]
