"""Registry requests and responses."""

from __future__ import annotations

import datetime as dt
import itertools

from pydantic import BaseModel, ConfigDict, Field, model_validator

from settlement.claims.models import Category, Scheme  # the six categories and two schemes of SPEC §3


class CategoryPeriod(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    valid_from: dt.date
    valid_to: dt.date | None = Field(None, description="inclusive; null: open-ended")

    @model_validator(mode="after")
    def _ordered(self) -> CategoryPeriod:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


def overlaps(periods: list[CategoryPeriod]) -> list[tuple[int, int]]:
    """Index pairs (i, j) of periods that overlap (both ends inclusive)."""
    order = sorted(range(len(periods)), key=lambda i: periods[i].valid_from)
    found = []
    for a, b in itertools.pairwise(order):
        end = periods[a].valid_to
        if end is None or end >= periods[b].valid_from:
            found.append((a, b))
    return found


class PersonIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "scheme": "resident",
                "categories": [
                    {"category": "registered_poor", "valid_from": "2018-01-01", "valid_to": None}
                ],
            }
        },
    )

    scheme: Scheme
    categories: list[CategoryPeriod] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _no_overlap(self) -> PersonIn:
        clashes = overlaps(self.categories)
        if clashes:
            a, b = clashes[0]
            raise ValueError(f"category periods {a} and {b} overlap")
        return self


class PersonOut(BaseModel):
    person_id: str
    scheme: Scheme
    categories: list[CategoryPeriod]
    created_at: dt.datetime
    updated_at: dt.datetime


class ImportOut(BaseModel):
    persons: int
    periods: int


class AccumulatorsOut(BaseModel):
    person_id: str
    policy_year: int
    basic_paid: dict[str, str]
    critical_base: str
    critical_paid: str
    assistance_base: str
    assistance_paid: str
    charity_paid: dict[str, str]
