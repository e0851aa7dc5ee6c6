"""HTTP routes of settlements. Each route owns its transaction: it commits, services flush."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError

from settlement.claims import Claim
from settlement.claims.models import Category
from settlement.service import metrics, pgloop
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal, bearer_key
from settlement.service.db import run_transaction, violated_constraint
from settlement.service.deps import PROBLEM, Ctx, ReadSession, principal_of, require
from settlement.service.errors import ServiceError
from settlement.service.exports import Format, file_response, pick_format
from settlement.service.reviews.rules import RULES
from settlement.service.strict import DISTRICT_PREFIX_PATTERN, YUAN_PATTERN

from . import pgcounter, query, service
from .models import AMOUNTS
from .schemas import ReversalIn, ReviewedPage, ReviewedSettlementOut, SettlementOut

router = APIRouter(prefix="/v1/settlements", tags=["settlements"])

ReaderKey = Annotated[
    Principal, Depends(require(Role.HOSPITAL, Role.REVIEWER, Role.INSURER, Role.ADMIN))
]

CLAIM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": Claim.model_json_schema()}},
        "description": "one claim (SPEC §3); patient.scheme and patient.category may be left out:"
        " the registry decides them",
    }
}


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The body as it is (already in SettlementOut's shape and order), without a second validation pass.

    FastAPI would validate and re-serialise the dict through the response model;
    on the counter's routes that was ~7 % of a request (docs/PERFORMANCE.md).
    tests/service/test_settlements.py checks the bytes equal the model's.
    """
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


counter_api = APIRouter(prefix="/v1/settlements", tags=["settlements"])
"""The counter's routes as the OpenAPI document and service.strict read them; never mounted: the
requests are answered by service.counter_routes (settle_counter, preview_counter, reverse_counter)."""


@counter_api.post(
    "/preview",
    response_model=SettlementOut,
    summary="Preview (预结算): the result on current accumulators; stores nothing",
    openapi_extra=CLAIM_BODY,
    responses={400: PROBLEM, 403: PROBLEM, 422: PROBLEM},
)
def preview() -> None:  # pragma: no cover - a declaration
    pass  # answered by preview_on_loop (PostgreSQL) or preview_counter (a docstring: the description)


@counter_api.post(
    "",
    status_code=201,
    response_model=SettlementOut,
    summary="Settle (结算) and commit; the same claim again replays the first result",
    openapi_extra=CLAIM_BODY,
    responses={
        200: {
            "description": "the same claim was settled before: its first result"
            " (header Idempotent-Replayed: true)"
        },
        400: PROBLEM,
        403: PROBLEM,
        409: PROBLEM,
        422: PROBLEM,
    },
)
def settle() -> None:  # pragma: no cover - a declaration
    pass  # answered by settle_counter


@counter_api.post(
    "/{settlement_id}/reversal",
    response_model=SettlementOut,
    summary="Reverse (结算撤销): status reversed, negating ledger entries, contributions out",
    responses={403: PROBLEM, 404: PROBLEM},
)
def reverse(settlement_id: str, data: Annotated[ReversalIn | None, Body()] = None) -> None:  # pragma: no cover
    pass  # answered by reverse_counter (keys: hospital, its own settlements, and admin)


async def preview_on_loop(raw: bytes, request: Request, ctx: Any) -> Response:
    """PostgreSQL's preview, awaited on the event loop (pgcounter.preview on service.pgloop's connections)."""
    conns: pgloop.Reader | None = getattr(request.app.state, "loop_conns", None)
    if conns is None:  # the lifespan did not run (tests' clients): a connection for this request
        conns = pgloop.OwnConnection(ctx.db.counter_conninfo(), ctx.db.counter_kwargs())
    body = await pgcounter.preview(ctx, request.headers.get("authorization"), raw, conns)
    metrics.PREVIEWS.inc()
    return json_response(body)


def preview_counter(raw: bytes, request: Request, ctx: Any) -> Response:
    """The portable preview (SQLite), in a counter thread."""
    with ctx.db.read() as session:  # opened here: a session dependency costs two thread-pool hops
        try:
            principal = principal_of(request, ctx, Role.HOSPITAL, session=session)
            body = service.preview(session, ctx, principal, raw)
        finally:
            session.rollback()  # nothing to keep: a preview never writes
    metrics.PREVIEWS.inc()
    return json_response(body)


def settle_counter(raw: bytes, request: Request, ctx: Any) -> Response:
    known: list[Principal] = []
    try:
        outcome = _settle_counter(raw, request, ctx, known) if ctx.db.dialect == "postgresql" else None
        if outcome is None:
            outcome = _settle_transaction(raw, request, ctx, known)
    except ServiceError as exc:
        if known:  # a refused key is not a settle call
            metrics.SETTLEMENTS.labels("conflict" if exc.status == 409 else "rejected").inc()
        raise
    except Exception:
        metrics.SETTLEMENTS.labels("rejected").inc()
        raise
    metrics.SETTLEMENTS.labels("created" if outcome.created else "replayed").inc()
    if outcome.created:
        return json_response(outcome.body, 201)
    return json_response(outcome.body, 200, {"Idempotent-Replayed": "true"})


def _settle_counter(raw: bytes, request: Request, ctx: Any, known: list[Principal]) -> service.Outcome | None:
    """PostgreSQL: two statements, no lock held while Python runs (settlements.pgcounter).

    None when the transaction of _settle_transaction must answer: the locked way, or the
    replay of a claim a concurrent settle committed first.
    """
    try:
        return pgcounter.settle(ctx, request.headers.get("authorization"), raw, known)
    except pgcounter.UseLockedPath:
        return None
    except IntegrityError as exc:
        if "claim_id" not in (violated_constraint(exc) or ""):
            raise
        return None


def _settle_transaction(raw: bytes, request: Request, ctx: Any, known: list[Principal]) -> service.Outcome:
    """service.settle in one transaction (SQLite, and PostgreSQL's locked way), retried on deadlocks."""

    def work(session: Any) -> service.Outcome:
        # the key is checked in the settle's own transaction: one connection per request
        if not known:
            known.append(principal_of(request, ctx, Role.HOSPITAL, session=session))
        return service.settle(session, ctx, known[0], raw)

    try:
        return _counted_transaction(ctx, work)
    except IntegrityError as exc:
        # the final guard: a concurrent settle under the same (hospital id, claim_id)
        # committed first; everything of ours is rolled back, answer with the stored one
        if "claim_id" not in (violated_constraint(exc) or ""):
            raise
        with ctx.db.read() as session:
            return service.after_duplicate(session, known[0], raw)


def reverse_counter(settlement_id: str, reason: str | None, request: Request, ctx: Any) -> Response:
    """The reversal route's work, from the front door too (service.counter_routes)."""
    outcome = _reverse(ctx, request, settlement_id, reason)
    metrics.REVERSALS.labels("reversed" if outcome.created else "already").inc()
    return json_response(outcome.body)


REVERSAL_BODY: TypeAdapter[ReversalIn | None] = TypeAdapter(ReversalIn | None)


def reversal_reason(raw: bytes, header: str | None) -> str | None:
    """The reason of a reversal's body (none, JSON ``null`` or a ReversalIn), as FastAPI would read
    the declared ``ReversalIn | None`` body; 401 without a key before a refused body's 400/422."""
    if not raw:
        return None
    try:
        data = REVERSAL_BODY.validate_json(raw)
    except ValidationError as exc:
        bearer_key(header)
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    return data.reason if data is not None else None


def _reverse(ctx: Any, request: Request, settlement_id: str, reason: str | None) -> service.Outcome:
    if ctx.db.dialect == "postgresql":  # one statement (settlements.pgcounter.reverse)
        return pgcounter.reverse(ctx, request.headers.get("authorization"), settlement_id, reason)
    principal = principal_of(request, ctx, Role.HOSPITAL, Role.ADMIN)
    return _counted_transaction(ctx, lambda session: service.reverse(session, ctx, principal, settlement_id, reason))


def _counted_transaction(ctx: Any, work: Callable[[Any], service.Outcome]) -> service.Outcome:
    """db.run_transaction of the counter's writes, each retry counted (metrics.TRANSACTION_RETRIES)."""
    return run_transaction(
        ctx.db.write, work, retries=ctx.settings.transaction_retries,
        on_retry=lambda _exc: metrics.TRANSACTION_RETRIES.inc(),
    )


@router.get(
    "/{settlement_id}",
    response_model=ReviewedSettlementOut,
    summary="A stored settlement with its trace, review status and flags",
    responses={404: PROBLEM},
)
def get_settlement(
    settlement_id: str, principal: ReaderKey, session: ReadSession
) -> dict[str, Any]:
    from settlement.service.reviews.service import with_review

    return with_review(session, principal, service.get(session, principal, settlement_id))


SORTS = (*query.SORTS, *(f"-{key}" for key in query.SORTS))
"""The list's sorts: a column ascending, or descending with a leading -."""


@router.get(
    "",
    response_model=ReviewedPage,
    summary="Settlements, filtered and sorted, by cursor; the count and totals of the whole filter;"
    " format=csv|xlsx streams them all as a file",
    responses={
        200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
        404: PROBLEM,
    },
)
def list_settlements(
    request: Request,
    principal: ReaderKey,
    session: ReadSession,
    ctx: Ctx,
    hospital_id: str | None = None,
    person_id: str | None = None,
    claim_id: Annotated[str | None, Query(max_length=128, description="the hospital's claim id")] = None,
    status: Literal["settled", "reversed"] | None = None,
    category: Category | None = None,
    disease_group: str | None = None,
    pathway: Literal["standard", "single_disease"] | None = None,
    discharged_from: Annotated[
        dt.date | None, Query(alias="from", description="discharged on or after")
    ] = None,
    discharged_to: Annotated[
        dt.date | None, Query(alias="to", description="discharged on or before")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    # the review queue's (issue 12); the query is built in settlements.query
    scheme: Literal["resident", "employee"] | None = None,
    visit_type: Literal["inpatient", "outpatient", "chronic_outpatient"] | None = None,
    settled_from: Annotated[dt.date | None, Query(description="settled on or after (service time zone)")] = None,
    settled_to: Annotated[dt.date | None, Query(description="settled on or before (service time zone)")] = None,
    district: Annotated[
        str | None,
        Query(pattern=DISTRICT_PREFIX_PATTERN, description="行政区划代码 prefix of the person's registry district"),
    ] = None,
    fund: Annotated[str | None, Query(description="a fund or layer that paid (e.g. backstop, a charity fund)")] = None,
    review_status: Literal["pending", "approved", "queried", "recovery"] | None = None,
    flag: Annotated[
        Literal[RULES] | None,  # type: ignore[valid-type]
        Query(description="a review rule that fired (GET /v1/review-rules)"),
    ] = None,
    total_min: Annotated[str | None, Query(pattern=YUAN_PATTERN, description="total at least (yuan)")] = None,
    total_max: Annotated[str | None, Query(pattern=YUAN_PATTERN, description="total at most (yuan)")] = None,
    layer: Annotated[
        Literal[AMOUNTS] | None,  # type: ignore[valid-type]
        Query(description="the amount layer_min/layer_max bound"),
    ] = None,
    layer_min: Annotated[str | None, Query(pattern=YUAN_PATTERN, description="yuan")] = None,
    layer_max: Annotated[str | None, Query(pattern=YUAN_PATTERN, description="yuan")] = None,
    sort: Annotated[
        Literal[SORTS] | None,  # type: ignore[valid-type]
        Query(description="a column (default seq); -name for descending"),
    ] = None,
    totals: Annotated[bool, Query(description="false: skip the count and totals")] = True,
    format: Annotated[
        Format | None, Query(description="json, csv, xlsx or parquet (else the Accept header; default json)")
    ] = None,
) -> Any:
    flt = query.make_filter(
        hospital_id=hospital_id, person_id=person_id, claim_id=claim_id, status=status, category=category,
        disease_group=disease_group, pathway=pathway, discharged_from=discharged_from,
        discharged_to=discharged_to, scheme=scheme, visit_type=visit_type, settled_from=settled_from,
        settled_to=settled_to, district=district, fund=fund, review_status=review_status, flag=flag,
        total_min=total_min, total_max=total_max, layer=layer, layer_min=layer_min, layer_max=layer_max,
    )
    fmt = pick_format(request, format)
    if fmt != "json":
        columns, rows, name = query.export(ctx, principal, flt, sort=sort)
        return file_response(fmt, columns, rows, name, sheet="结算单")
    return query.search(
        session, ctx, principal, flt, sort=sort, cursor=cursor,
        limit=min(limit, ctx.settings.list_limit_max), totals=totals,
    )
