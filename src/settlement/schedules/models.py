"""Pydantic models of `schedule.yaml`, strict: no extra keys, exact numbers.

The YAML loader hands floats over as Decimal (see loader.py), so a rate of
0.85 arrives as Decimal('0.85') and is turned into 8500 basis points without
ever passing through binary floating point.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator

from settlement.money import FEN_PER_YUAN, RATE_SCALE, decimal_places, decimal_to_scaled

from .types import CATEGORIES, SCHEMES, VISIT_TYPES


def _number(value: Any) -> Decimal:
    if value is None:
        raise ValueError("wrong type: expected a number, got null (only caps, pools and up_to may be null)")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"wrong type: expected a number, got {type(value).__name__} {value!r}")
    return Decimal(value)


def _money(value: Any) -> int:
    number = _number(value)
    if number < 0:
        raise ValueError(f"money must not be negative, got {number}")
    if decimal_places(number) > 2:
        raise ValueError(f"money has more than 2 decimals: {number}")
    return decimal_to_scaled(number, FEN_PER_YUAN)


def _rate(value: Any) -> int:
    number = _number(value)
    if not 0 <= number <= 1:
        raise ValueError(f"rate outside 0–1: {number}")
    if decimal_places(number) > 4:
        raise ValueError(f"rate has more than 4 decimals: {number}")
    return decimal_to_scaled(number, RATE_SCALE)


def _category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"unknown category {value!r}; one of {', '.join(CATEGORIES)}")
    return value


def _visit_type(value: str) -> str:
    if value not in VISIT_TYPES:
        raise ValueError(f"unknown visit type {value!r}; one of {', '.join(VISIT_TYPES)}")
    return value


def _level(value: int) -> int:
    if value not in (1, 2, 3):
        raise ValueError(f"hospital level must be 1, 2 or 3, got {value}")
    return value


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


Money = Annotated[int, BeforeValidator(_money)]
Rate = Annotated[int, BeforeValidator(_rate)]
Category = Annotated[str, AfterValidator(_category)]
VisitType = Annotated[str, AfterValidator(_visit_type)]
Level = Annotated[int, AfterValidator(_level)]
CategoryList = Annotated[list[Category], AfterValidator(_unique)]
VisitTypeList = Annotated[list[VisitType], AfterValidator(_unique)]
LevelList = Annotated[list[Level], AfterValidator(_unique)]
Age = Annotated[int, AfterValidator(lambda v: _non_negative(v, "age"))]


def _non_negative(value: int, what: str) -> int:
    if value < 0:
        raise ValueError(f"{what} must not be negative")
    return value


def _by_level(value: dict[int, Any]) -> dict[int, Any]:
    if sorted(value) != [1, 2, 3]:
        raise ValueError(f"needs exactly the hospital levels 1, 2, 3, got {sorted(value)}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Reference(Strict):
    title: str
    note: str | None = None


class Adjustment(Strict):
    deductible_reduction: Rate
    rate_bonus: Rate


class CriticalAdjustment(Adjustment):
    uncapped: bool = False


class BasicSectionModel(Strict):
    deductible: Annotated[dict[int, Money], AfterValidator(_by_level)]
    rate: Annotated[dict[int, Rate], AfterValidator(_by_level)]
    annual_cap: Money | None


class BasicSchemeModel(Strict):
    inpatient: BasicSectionModel | None = None
    outpatient: BasicSectionModel | None = None
    chronic_outpatient: BasicSectionModel | None = None


class BasicModel(Strict):
    resident: BasicSchemeModel | None = None
    employee: BasicSchemeModel | None = None
    category_adjustments: dict[Category, Adjustment] = {}


class BandModel(Strict):
    up_to: Money | None
    rate: Rate


def _bands_in_order(bands: list[BandModel]) -> list[BandModel]:
    if not bands:
        raise ValueError("needs at least one band")
    for i, band in enumerate(bands):
        last = i == len(bands) - 1
        if last and band.up_to is not None:
            raise ValueError("the last band's up_to must be null")
        if not last and band.up_to is None:
            raise ValueError(f"band {i}: only the last band may have up_to null")
        if i > 0 and band.up_to is not None:
            previous = bands[i - 1].up_to
            assert previous is not None
            if band.up_to <= previous:
                raise ValueError(f"band {i}: up_to must rise (bands out of order)")
    return bands


class CriticalSectionModel(Strict):
    visit_types: VisitTypeList
    annual_deductible: Money
    bands: Annotated[list[BandModel], AfterValidator(_bands_in_order)]
    annual_cap: Money | None


class CriticalModel(Strict):
    resident: CriticalSectionModel | None = None
    employee: CriticalSectionModel | None = None
    category_adjustments: dict[Category, CriticalAdjustment] = {}


class AssistanceCategoryModel(Strict):
    annual_deductible: Money
    rate: Rate
    annual_cap: Money | None


class AssistanceModel(Strict):
    visit_types: VisitTypeList
    categories: dict[Category, AssistanceCategoryModel]


EMERGENCY_RELIEF = "emergency_relief"
"""The emergency relief fund's id: its pool sits beside the charity funds', so no charity fund may use it."""


def _fund_id(value: str) -> str:
    if value == EMERGENCY_RELIEF:
        raise ValueError(f"{EMERGENCY_RELIEF} is the emergency relief fund's id; a charity fund may not use it")
    return value


class FundModel(Strict):
    id: Annotated[str, AfterValidator(_fund_id)]
    name: str
    categories: CategoryList
    visit_types: VisitTypeList
    disease_groups: Annotated[list[str], AfterValidator(_unique)] | None
    rate: Rate
    annual_cap_per_person: Money | None
    annual_pool: Money | None


class CharityModel(Strict):
    funds: list[FundModel]

    @model_validator(mode="after")
    def _unique_ids(self) -> CharityModel:
        _unique([fund.id for fund in self.funds])
        return self


class BackstopModel(Strict):
    categories: CategoryList
    visit_types: VisitTypeList
    hospital_levels: LevelList
    max_personal_share: Rate


class EmergencyReliefModel(Strict):
    """SPEC §5.5 emergency relief (疾病应急救助): every key required when the section is there."""

    hospital_levels: LevelList
    rate: Rate
    case_cap: Money | None
    annual_pool: Money | None


class SharesModel(Strict):
    basic: Rate
    critical_illness: Rate
    medical_assistance: Rate

    @model_validator(mode="after")
    def _at_most_whole(self) -> SharesModel:
        if self.basic + self.critical_illness + self.medical_assistance > RATE_SCALE:
            raise ValueError("shares add up to more than 1")
        return self


class AgeRange(Strict):
    min_age: Age | None = None
    max_age: Age | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AgeRange:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        return self


Icd10List = Annotated[list[Annotated[str, AfterValidator(lambda s: _pattern(s))]], AfterValidator(_unique)]


def _pattern(value: str) -> str:
    if not value.strip():
        raise ValueError("an ICD-10 pattern must not be empty")
    return value


class StandardModel(AgeRange):
    treatment: Annotated[str, AfterValidator(lambda s: _nonempty(s, "treatment"))]
    amount: Money
    per: Literal["case", "session"] = "case"
    icd10: Icd10List | None = None


def _nonempty(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


class GroupModel(AgeRange):
    id: str
    name: str
    icd10: Annotated[Icd10List, AfterValidator(lambda v: _nonempty_list(v, "icd10"))]
    visit_types: VisitTypeList = ["inpatient"]
    shares: SharesModel | None = None
    standards: Annotated[list[StandardModel], AfterValidator(lambda v: _nonempty_list(v, "standards"))]


def _nonempty_list(value: list[Any], what: str) -> list[Any]:
    if not value:
        raise ValueError(f"{what} must list at least one entry")
    return value


class SingleDiseaseModel(Strict):
    schemes: Annotated[list[Literal["resident", "employee"]], AfterValidator(_unique)]
    categories: CategoryList
    hospital_levels: LevelList
    shares: SharesModel
    groups: list[GroupModel]

    @model_validator(mode="after")
    def _unique_ids(self) -> SingleDiseaseModel:
        _unique([group.id for group in self.groups])
        return self


class ScheduleModel(Strict):
    id: Annotated[str, AfterValidator(lambda s: _nonempty(s, "id"))]
    region: str
    name: str
    effective_from: dt.date
    references: list[Reference] = []
    categories: Annotated[CategoryList, AfterValidator(lambda v: _nonempty_list(v, "categories"))]
    basic: BasicModel
    critical_illness: CriticalModel | None = None
    medical_assistance: AssistanceModel | None = None
    charity: CharityModel | None = None
    backstop: BackstopModel | None = None
    single_disease: SingleDiseaseModel | None = None
    emergency_relief: EmergencyReliefModel | None = None

    @model_validator(mode="after")
    def _cross_references(self) -> ScheduleModel:
        """Names used in one section must exist in the others."""
        listed = set(self.categories)
        used: list[tuple[str, list[str]]] = [
            ("basic.category_adjustments", list(self.basic.category_adjustments)),
        ]
        if self.critical_illness:
            used.append(
                ("critical_illness.category_adjustments", list(self.critical_illness.category_adjustments))
            )
        if self.medical_assistance:
            used.append(("medical_assistance.categories", list(self.medical_assistance.categories)))
        if self.charity:
            for i, fund in enumerate(self.charity.funds):
                used.append((f"charity.funds.{i}.categories", fund.categories))
        if self.backstop:
            used.append(("backstop.categories", self.backstop.categories))
        if self.single_disease:
            used.append(("single_disease.categories", self.single_disease.categories))
        for where, names in used:
            missing = [name for name in names if name not in listed]
            if missing:
                raise ValueError(f"{where}: {', '.join(missing)} not in the schedule's categories")
        groups = {group.id for group in self.single_disease.groups} if self.single_disease else set()
        if self.charity:
            for i, fund in enumerate(self.charity.funds):
                unknown = [g for g in fund.disease_groups or [] if g not in groups]
                if unknown:
                    raise ValueError(
                        f"charity.funds.{i}.disease_groups: unknown group {', '.join(unknown)}"
                    )
        return self


AdjustmentTypes = Adjustment | CriticalAdjustment

__all__ = ["SCHEMES", "AdjustmentTypes", "ScheduleModel"]
