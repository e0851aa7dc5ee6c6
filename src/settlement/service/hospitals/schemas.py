"""Hospital registry requests and responses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from settlement.claims.models import check_identifier

DISTRICT_PATTERN = r"^[0-9]{6}$"


class HospitalIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"name": "哈尔滨市第一医院", "level": 3, "district": "230102"}},
    )

    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_identifier)]
    level: Literal[1, 2, 3] = Field(description="1 一级及以下, 2 二级, 3 三级: the level the counter settles at")
    district: Annotated[str, Field(pattern=DISTRICT_PATTERN, description="行政区划代码, six digits")]


class HospitalOut(BaseModel):
    hospital_id: str
    name: str
    level: Literal[1, 2, 3]
    district: str
    created_at: dt.datetime
    updated_at: dt.datetime


class HospitalChangeOut(BaseModel):
    at: dt.datetime
    actor: str = Field(description="who: the staff username, else the API key id")
    before: dict[str, Any] | None = Field(description="the entry before (name, level, district); null: created")
    after: dict[str, Any]
