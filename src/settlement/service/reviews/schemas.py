"""Review requests and responses."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from settlement.claims.models import Category, VisitType
from settlement.service.settlements.models import AMOUNTS
from settlement.service.strict import DISTRICT_PREFIX_PATTERN, TEXT_PATTERN, VALUE_PATTERN, YUAN_PATTERN, JsonDate

from .rules import RULES

Decision = Literal["approve", "query", "recover", "comment"]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Decision
    note: str | None = Field(
        None, max_length=2000, pattern=TEXT_PATTERN, description="审核意见; required for query and recover"
    )


class ReviewOut(BaseModel):
    id: int
    settlement_id: str
    decision: Decision
    note: str | None
    actor: str = Field(description="who: the staff username, else the API key id")
    at: dt.datetime
    batch_id: str | None = Field(description="the bulk approval that wrote it, else null")


class FilterIn(BaseModel):
    """The settlements list's filter (the same names as its query parameters), for bulk approval."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True,
        json_schema_extra={"anyOf": [  # bounds_need_layer: no bound, or layer given
            {"properties": {"layer_min": {"type": "null"}, "layer_max": {"type": "null"}}},
            {"required": ["layer"], "properties": {"layer": {"type": "string"}}},
        ]},
    )
    hospital_id: str | None = Field(None, pattern=VALUE_PATTERN)  # as the list's query values (service.strict)
    person_id: str | None = Field(None, pattern=VALUE_PATTERN)
    claim_id: str | None = Field(None, pattern=VALUE_PATTERN)
    status: Literal["settled", "reversed"] | None = None
    scheme: Literal["resident", "employee"] | None = None
    category: Category | None = None
    visit_type: VisitType | None = None
    pathway: Literal["standard", "single_disease"] | None = None
    disease_group: str | None = Field(None, pattern=VALUE_PATTERN)
    discharged_from: JsonDate | None = Field(None, alias="from")
    discharged_to: JsonDate | None = Field(None, alias="to")
    settled_from: JsonDate | None = None
    settled_to: JsonDate | None = None
    district: str | None = Field(None, pattern=DISTRICT_PREFIX_PATTERN)
    fund: str | None = Field(None, pattern=VALUE_PATTERN)
    review_status: Literal["pending", "approved", "queried", "recovery"] | None = None
    flag: Literal[RULES] | None = None  # type: ignore[valid-type]
    total_min: str | None = Field(None, pattern=YUAN_PATTERN, description="yuan")
    total_max: str | None = Field(None, pattern=YUAN_PATTERN, description="yuan")
    layer: Literal[AMOUNTS] | None = None  # type: ignore[valid-type]
    layer_min: str | None = Field(None, pattern=YUAN_PATTERN, description="yuan")
    layer_max: str | None = Field(None, pattern=YUAN_PATTERN, description="yuan")

    @model_validator(mode="after")
    def bounds_need_layer(self) -> FilterIn:
        """layer_min and layer_max bound the amount named by layer (the document's anyOf says the same:
        refused as not the document's, 400, not as a rule's value_error, 422)."""
        if (self.layer_min is not None or self.layer_max is not None) and self.layer is None:
            raise PydanticCustomError("layer_missing", "layer_min and layer_max need layer (the amount they bound)")
        return self


class BulkApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: FilterIn
    count: int = Field(ge=0, strict=True, description="the number of settlements the caller was shown for this filter")
    total: str = Field(pattern=YUAN_PATTERN, description="their total (医疗费总额) the caller was shown, yuan")
    note: str | None = Field(None, max_length=2000, pattern=TEXT_PATTERN)


class BulkApprovalOut(BaseModel):
    batch_id: str
    approved: int
    total: str
    actor: str
    at: dt.datetime


class RuleOut(BaseModel):
    rule: str
    name: str
    kind: Literal["claim", "person"]
    enabled: bool
    threshold: dict[str, Any]


class RulesOut(BaseModel):
    source: str = Field(description="the rules file in force")
    digest: str
    rules: list[RuleOut]
    refresher: dict[str, Any] = Field(description="the flags refresher's watermark and backlog")
