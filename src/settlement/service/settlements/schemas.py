"""Settlement responses (SPEC §6 result plus the service's fields)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from settlement.service.strict import refusal


class Amounts(BaseModel):
    total: str
    fully_self_paid: str
    over_limit: str
    pre_self_paid: str
    in_scope: str
    deductible: str


class Payments(BaseModel):
    """Null: a payer a fund-limited insurer key does not see (settlements.visibility)."""

    basic: str | None
    critical_illness: str | None
    medical_assistance: str | None
    charity: str | None
    emergency_relief: str | None
    backstop: str | None


class TraceStep(BaseModel):
    layer: str
    text: str
    keys: list[str]


class SettlementSummary(BaseModel):
    settlement_id: str | None = Field(description="null for a preview")
    status: Literal["preview", "settled", "reversed"]
    hospital_id: str
    settled_at: dt.datetime | None
    reversed_at: dt.datetime | None = None
    claim_id: str
    person_id: str | None = Field(description="null for an unidentified patient (temporary_id)")
    scheme: str | None
    category: str | None
    temporary_id: str | None = Field(None, description="an unidentified patient's temporary id (身份不明)")
    emergency: bool = Field(False, description="the hospital's declaration: emergency care (急危重伤病)")
    unable_to_pay: bool = Field(False, description="the hospital's declaration: the patient cannot pay (无力支付)")
    schedule: str
    policy_year: int
    pathway: Literal["standard", "single_disease"]
    disease_group: str | None
    amounts: Amounts
    payments: Payments
    charity_by_fund: dict[str, str]
    patient_pays: str | None = Field(description="null for a fund-limited insurer key without the patient share")
    hospital_bears: str | None = Field(description="null for a fund-limited insurer key without the hospital share")


class SettlementOut(SettlementSummary):
    trace: list[TraceStep]
    accumulators_after: dict[str, Any] = Field(
        description="the person-year totals after this claim and the pools it drew on (yuan)"
    )


def _reason(value: str | None) -> str | None:
    """A reason is refused (not trimmed) when blank or holding a control or bidirectional character."""
    if value is None:
        return None
    why = refusal(value)
    if why is not None:
        raise ValueError(why)
    return value


class ReversalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str | None, AfterValidator(_reason)] = Field(None, max_length=2000)


# -- review (issue 12): the resource with its review status and flags, the queue's page --------


class FlagOut(BaseModel):
    rule: str = Field(description="the rule's name (REVIEW_RULES.md), e.g. backstop_paid")
    name: str = Field(description="its Chinese name, e.g. 兜底支付")
    figures: dict[str, Any] = Field(description="the figures that made it fire")
    threshold: dict[str, Any] = Field(description="the rule's thresholds in force when it was evaluated")


ReviewStatusName = Literal["pending", "approved", "queried", "recovery"]


class ReviewedSummary(SettlementSummary):
    review_status: ReviewStatusName
    flags: list[FlagOut]


class ReviewedSettlementOut(SettlementOut):
    review_status: ReviewStatusName
    flags: list[FlagOut]


class ReviewedPage(BaseModel):
    items: list[ReviewedSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")
    count: int | None = Field(None, description="settlements of the whole filter (not just the page)")
    totals: dict[str, str] | None = Field(
        None, description="each amount summed over the whole filter, yuan (null with totals=false)"
    )
