"""Typed, immutable schedule versions: money in fen, rates in basis points.

These are plain frozen dataclasses (no pydantic) so the engine can depend on
them without pulling in validation code; the loader builds them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from settlement.jit import helper

SCHEMES: tuple[str, ...] = ("resident", "employee")
CATEGORIES: tuple[str, ...] = (
    "none",
    "extreme_poverty",
    "subsistence_allowance",
    "registered_poor",
    "low_income",
    "illness_impoverished",
)
VISIT_TYPES: tuple[str, ...] = ("inpatient", "outpatient", "chronic_outpatient")
LEVELS: tuple[int, ...] = (1, 2, 3)
CLASSES: tuple[str, ...] = ("A", "B", "C")


@dataclass(frozen=True, slots=True)
class CategoryAdjustment:
    deductible_reduction_bp: int = 0
    rate_bonus_bp: int = 0
    uncapped: bool = False


NO_ADJUSTMENT = CategoryAdjustment()


@dataclass(frozen=True, slots=True)
class BasicSection:
    deductible_fen: dict[int, int]
    rate_bp: dict[int, int]
    annual_cap_fen: int | None


@dataclass(frozen=True, slots=True)
class BasicLayer:
    sections: dict[tuple[str, str], BasicSection]
    """Keyed by (scheme, visit type); a missing pair pays 0."""
    category_adjustments: dict[str, CategoryAdjustment]


@dataclass(frozen=True, slots=True)
class Band:
    up_to_fen: int | None
    rate_bp: int


@dataclass(frozen=True, slots=True)
class CriticalSection:
    visit_types: frozenset[str]
    annual_deductible_fen: int
    bands: tuple[Band, ...]
    annual_cap_fen: int | None


@dataclass(frozen=True, slots=True)
class CriticalLayer:
    sections: dict[str, CriticalSection]
    category_adjustments: dict[str, CategoryAdjustment]


@dataclass(frozen=True, slots=True)
class AssistanceCategory:
    annual_deductible_fen: int
    rate_bp: int
    annual_cap_fen: int | None


@dataclass(frozen=True, slots=True)
class AssistanceLayer:
    visit_types: frozenset[str]
    categories: dict[str, AssistanceCategory]


@dataclass(frozen=True, slots=True)
class CharityFund:
    id: str
    name: str
    categories: frozenset[str]
    visit_types: frozenset[str]
    disease_groups: frozenset[str] | None
    rate_bp: int
    annual_cap_per_person_fen: int | None
    annual_pool_fen: int | None


@dataclass(frozen=True, slots=True)
class Backstop:
    categories: frozenset[str]
    visit_types: frozenset[str]
    hospital_levels: frozenset[int]
    max_personal_share_bp: int


@dataclass(frozen=True, slots=True)
class EmergencyRelief:
    """SPEC §5.5: the emergency relief fund (疾病应急救助基金); its pool is per policy year."""

    hospital_levels: frozenset[int]
    rate_bp: int
    case_cap_fen: int | None
    annual_pool_fen: int | None


@dataclass(frozen=True, slots=True)
class Shares:
    basic_bp: int
    critical_illness_bp: int
    medical_assistance_bp: int


@dataclass(frozen=True, slots=True)
class Standard:
    treatment: str
    amount_fen: int
    per: Literal["case", "session"]
    icd10: tuple[str, ...] | None
    min_age: int | None
    max_age: int | None


@dataclass(frozen=True, slots=True)
class DiseaseGroup:
    id: str
    name: str
    icd10: tuple[str, ...]
    visit_types: frozenset[str]
    min_age: int | None
    max_age: int | None
    shares: Shares | None
    standards: tuple[Standard, ...]


@dataclass(frozen=True, slots=True)
class SingleDisease:
    schemes: frozenset[str]
    categories: frozenset[str]
    hospital_levels: frozenset[int]
    shares: Shares
    groups: tuple[DiseaseGroup, ...]


@dataclass(frozen=True, slots=True)
class CatalogItem:
    code: str
    name: str
    kind: str
    cls: str
    self_pay_ratio_bp: int | None
    price_cap_fen: int | None


@dataclass(frozen=True, slots=True)
class ScheduleVersion:
    id: str
    region: str
    name: str
    effective_from: dt.date
    categories: tuple[str, ...]
    basic: BasicLayer
    critical_illness: CriticalLayer | None
    medical_assistance: AssistanceLayer | None
    charity_funds: tuple[CharityFund, ...]
    backstop: Backstop | None
    single_disease: SingleDisease | None
    catalog: dict[str, CatalogItem]
    references: tuple[dict[str, str], ...] = ()
    source: str = ""
    emergency_relief: EmergencyRelief | None = None


def ymd(day: dt.date) -> int:
    """A date as y·10^4 + m·100 + d, as the compiled scanner reads dates."""
    return day.year * 10_000 + day.month * 100 + day.day


@helper
def version_in_force(effective_from: Any, day: int) -> int:
    """The index of the version in force on a day (both y·10^4 + m·100 + d): the last listed whose
    effective_from is on or before it; -1 if none. The one rule, for the per-line reader
    (ScheduleSet.index_for) and the compiled scanner alike."""
    found = -1
    for i in range(len(effective_from)):
        if effective_from[i] <= day:
            found = i
    return found


@dataclass(frozen=True, slots=True)
class ScheduleSet:
    """All versions of one region, oldest first."""

    region_dir: str
    versions: tuple[ScheduleVersion, ...]
    fund_ids: tuple[str, ...] = field(default=())
    """Every charity fund id of any version, in first-seen order (columns of the engine)."""

    def index_for(self, date: dt.date) -> int:
        """The version in force on a discharge date: latest effective_from on or before it; -1 if none."""
        return version_in_force([ymd(v.effective_from) for v in self.versions], ymd(date))

    def by_id(self, version_id: str) -> ScheduleVersion:
        for version in self.versions:
            if version.id == version_id:
                return version
        raise KeyError(version_id)
