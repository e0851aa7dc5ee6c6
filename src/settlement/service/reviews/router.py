"""HTTP routes of the review workflow (thin: the work is in reviews.service and settlements.query)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.db import run_transaction
from settlement.service.deps import PROBLEM, Ctx, ReadSession, require
from settlement.service.settlements.query import make_filter, yuan_to_fen

from . import flags, service
from .rules import rules_at
from .schemas import BulkApprovalIn, BulkApprovalOut, ReviewIn, ReviewOut, RulesOut

router = APIRouter(tags=["reviews"])

Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER, Role.ADMIN))]
Reader = Annotated[Principal, Depends(require(Role.HOSPITAL, Role.REVIEWER, Role.INSURER, Role.ADMIN))]


@router.post(
    "/v1/settlements/{settlement_id}/reviews",
    status_code=201,
    response_model=ReviewOut,
    summary="Record a review decision (审核: approve, query, recover) or a comment",
    responses={403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
def post_review(settlement_id: str, data: ReviewIn, principal: Reviewer, ctx: Ctx) -> dict[str, Any]:
    return run_transaction(
        ctx.db.write,
        lambda session: service.add_review(session, ctx, principal, settlement_id, data.decision, data.note),
        retries=ctx.settings.transaction_retries,
    )


@router.get(
    "/v1/settlements/{settlement_id}/reviews",
    response_model=list[ReviewOut],
    summary="A settlement's review records, oldest first",
    responses={404: PROBLEM},
)
def get_reviews(settlement_id: str, principal: Reader, session: ReadSession) -> list[dict[str, Any]]:
    return service.list_reviews(session, principal, settlement_id)


@router.post(
    "/v1/settlements/approvals",
    status_code=201,
    response_model=BulkApprovalOut,
    summary="Approve every settlement of a filter (the list's), confirming the count and total shown",
    responses={403: PROBLEM, 404: {**PROBLEM, "description": "the filter's fund is not one (naming the funds)"},
               409: PROBLEM, 422: PROBLEM},
)
def bulk_approve(data: BulkApprovalIn, principal: Reviewer, ctx: Ctx) -> dict[str, Any]:
    flt = make_filter(**data.filter.model_dump())
    total = yuan_to_fen("total", data.total)
    return run_transaction(
        ctx.db.write,
        lambda session: service.bulk_approve(
            session, ctx, principal, flt, expected_count=data.count, expected_total=total or 0, note=data.note
        ),
        retries=ctx.settings.transaction_retries,
    )


@router.get(
    "/v1/review-rules",
    response_model=RulesOut,
    summary="The review flags' rules and the thresholds in force (REVIEW_RULES.md)",
    responses={403: PROBLEM},
)
def review_rules(principal: Reviewer, ctx: Ctx, session: ReadSession) -> dict[str, Any]:
    rules = rules_at(str(ctx.settings.review_rules) if ctx.settings.review_rules else None)
    return {"source": rules.source, "digest": rules.digest, "rules": rules.view(), "refresher": flags.status(session)}
