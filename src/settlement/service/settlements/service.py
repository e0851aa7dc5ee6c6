"""Preview, settle, reverse: the counter's units of work. Each only flushes; the route commits.

A settle is one transaction, in this order (each step's lock or constraint named):

1. parse and validate the claim; the key's hospital must be the claim's;
2. an earlier settlement under (hospital id, claim_id)? same canonical hash →
   replay it, else 409 (fast path, no lock);
3. person id, registry identity on the admission date, schedule and catalog —
   nothing locked yet, so a rejected claim costs no lock;
4. lock the person-year row FOR UPDATE (accumulators.repository.lock_person_year):
   one person's settlements and reversals serialize here, which protects the
   per-person caps; then check step 2 again, now race-free for this person;
5. read the year's pools without a lock, run the engine; the funds the claim is
   eligible for are known now (eligibility does not depend on any total);
6. lock those pool rows FOR UPDATE in fund_id order (funds.repository.lock_pools):
   this protects the pools; if another settlement moved them since step 5, run
   the engine again on the locked values;
7. write the settlement, its ``settled`` event and ledger entries, add the
   contribution to the person-year and pool rows; the unique constraint on
   (hospital_id, claim_id) is the final guard against a double settlement
   (two different persons' claims under one key do not share the lock of step 4).

Lock order everywhere: settlement row (reversal only) → person-year row → pool
rows by fund_id. A deadlock or serialization failure anyway re-runs the whole
unit (db.run_transaction); any error rolls everything back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from settlement.claims import Claim, ClaimError, DuplicateKeyError, decode_json, validate_claim
from settlement.claims.person_id import PersonIdError, check_person_id
from settlement.engine.state import PersonYearTotals
from settlement.service import metrics
from settlement.service.accumulators.repository import (
    add_to_person_year,
    lock_person_year,
    read_person_year,
)
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.db import pg_connection
from settlement.service.errors import ServiceError, claim_problem, not_found
from settlement.service.funds.repository import add_pool_used, lock_pools, read_pools
from settlement.service.hospitals.service import registered_claim
from settlement.service.persons.service import identity_for_claim

from . import counter, repository
from .counter import Computation, CounterClaim, compute, prepare
from .hashing import claim_hash
from .repository import StoredSettlement
from .visibility import funds_view

R = TypeVar("R", bound=StoredSettlement)


@dataclass
class Outcome:
    body: dict[str, Any]
    created: bool


def iso_utc(value: dt.datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601 in UTC with a Z."""
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# -- reading a claim -------------------------------------------------------------


def parse_claim(raw: bytes, principal: Principal, today: dt.date | None = None) -> Claim:
    """The body as a validated claim of the key's hospital.

    400/422 invalid_claim; 403 hospital_mismatch when the claim is another hospital's.
    """
    claim = decode_claim(raw, today)
    check_hospital(claim, principal)
    return claim


def counter_today(ctx: ServiceContext) -> dt.date:
    """Today in the service's time zone (Asia/Shanghai): no claim discharged later is settled."""
    return ctx.today()


def decode_claim(raw: bytes, today: dt.date | None = None) -> Claim:
    """The body as a validated claim; 400/422 invalid_claim (a key named twice, a discharge after
    ``today`` included)."""
    try:
        obj = decode_json(raw)
    except DuplicateKeyError as exc:
        raise ServiceError(
            422, "invalid_claim", str(exc), errors=[{"field": exc.path, "message": "duplicate key"}]
        ) from None
    except ValueError:
        raise ServiceError(400, "invalid_claim", "the body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ServiceError(400, "invalid_claim", "the body must be a JSON object (one claim)")
    try:
        claim = validate_claim(obj)
    except ClaimError as exc:
        raise claim_problem(exc) from None
    if today is not None and claim.visit.discharged > today:
        message = f"is after today ({today.isoformat()}): a claim is settled after the discharge"
        raise ServiceError(
            422, "invalid_claim", f"visit.discharged: {message}",
            errors=[{"field": "visit.discharged", "message": message}], claim_id=claim.claim_id,
        )
    return claim


def check_hospital(claim: Claim, principal: Principal) -> None:
    """403 hospital_mismatch unless the key may settle for the claim's hospital."""
    if principal.hospital_id is not None and claim.hospital.id != principal.hospital_id:
        raise ServiceError(
            403,
            "hospital_mismatch",
            f"this key settles for hospital {principal.hospital_id};"
            f" the claim is for {claim.hospital.id}",
            claim_id=claim.claim_id,
        )


def counter_claim(session: Session, ctx: ServiceContext, claim: Claim) -> CounterClaim:
    """Person id, registry identity, schedule and catalog, in the SPEC §6 order.

    An unidentified patient has no person id to check and needs no registry entry (SPEC §9)."""
    scheme = category = None
    if claim.temporary_id is None:
        try:
            check_person_id(claim.patient.person_id, claim.visit.admitted)
        except PersonIdError as exc:
            raise ServiceError(422, "invalid_person_id", str(exc), claim_id=claim.claim_id) from None
        scheme, category = identity_for_claim(session, claim)
    try:
        return prepare(claim, ctx.tables, scheme, category)
    except ClaimError as exc:
        raise claim_problem(exc) from None


# -- responses -------------------------------------------------------------------


def _summary(
    result: dict[str, Any], *, settlement_id: str | None, status: str, hospital_id: str, settled_at: dt.datetime | None,
    reversed_at: dt.datetime | None, person_id: str | None, scheme: str | None, category: str | None,
    temporary_id: str | None, emergency: bool, unable_to_pay: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "settlement_id": settlement_id,
        "status": status,
        "hospital_id": hospital_id,
        "settled_at": iso_utc(settled_at),
        "reversed_at": iso_utc(reversed_at),
        "claim_id": result["claim_id"],  # the response model's order (router.json_response)
        "person_id": person_id,
        "scheme": scheme,
        "category": category,
        "temporary_id": temporary_id,
        "emergency": emergency,
        "unable_to_pay": unable_to_pay,
    }
    body.update(result)
    return body


def summary_of(row: StoredSettlement) -> dict[str, Any]:
    return _summary(
        row.result, settlement_id=row.settlement_id, status=row.status, hospital_id=row.hospital_id,
        settled_at=row.settled_at, reversed_at=row.reversed_at, person_id=row.person_id, scheme=row.scheme,
        category=row.category, temporary_id=row.temporary_id, emergency=bool(row.emergency),
        unable_to_pay=bool(row.unable_to_pay),
    )


def body_of(row: StoredSettlement) -> dict[str, Any]:
    """The stored settlement as the API returns it: first result, trace, totals after."""
    body = summary_of(row)
    body["trace"] = row.trace
    body["accumulators_after"] = row.accumulators_after
    return body


# -- preview ---------------------------------------------------------------------


def preview(
    session: Session, ctx: ServiceContext, principal: Principal, raw: bytes
) -> dict[str, Any]:
    """The result on the totals committed now; takes no lock and writes nothing (but who asked: see
    record_preview)."""
    claim = registered_claim(session, parse_claim(raw, principal, counter_today(ctx)))
    cc = counter_claim(session, ctx, claim)
    before = PersonYearTotals() if cc.unidentified else read_person_year(session, cc.person_id, cc.policy_year)
    pools = read_pools(session, cc.policy_year, cc.fund_ids)
    comp = compute(cc, before, pools)
    record_preview(ctx, principal, cc)
    return computed_body(
        cc, comp, status="preview", settlement_id=None, settled_at=None,
        accumulators_after=comp.accumulators_json(cc.person_id, cc.policy_year),
    )


def record_preview(ctx: ServiceContext, principal: Principal, cc: CounterClaim) -> None:
    """An answered preview is recorded (who, which person, when): previews.recorder, in batches."""
    if ctx.previews is not None:
        ctx.previews.record(ctx.now(), principal.actor, cc.claim.hospital.id, cc.person_id, cc.claim.claim_id)


def computed_body(
    cc: CounterClaim,
    comp: Computation,
    *,
    status: str,
    settlement_id: str | None,
    settled_at: dt.datetime | None,
    accumulators_after: Any,
) -> dict[str, Any]:
    """The response for a claim just computed (preview, or a settle on the late-lock path)."""
    body = _summary(
        comp.result, settlement_id=settlement_id, status=status, hospital_id=cc.claim.hospital.id,
        settled_at=settled_at, reversed_at=None, person_id=cc.person_id or None, scheme=cc.prepared.scheme or None,
        category=cc.prepared.category or None, temporary_id=cc.claim.temporary_id,
        emergency=cc.claim.visit.emergency, unable_to_pay=cc.claim.unable_to_pay,
    )
    body["trace"] = comp.trace
    body["accumulators_after"] = accumulators_after
    return body


# -- settle ----------------------------------------------------------------------


def replay_or_conflict(row: StoredSettlement, digest: str) -> Outcome:
    if row.claim_hash == digest:
        return Outcome(body_of(row), created=False)
    raise ServiceError(
        409,
        "claim_conflict",
        f"hospital {row.hospital_id} already settled another claim under claim_id {row.claim_id!r}"
        f" (settlement {row.settlement_id}); use a new claim_id for a new claim",
        claim_id=row.claim_id,
        settlement_id=row.settlement_id,
    )


def settle(session: Session, ctx: ServiceContext, principal: Principal, raw: bytes) -> Outcome:
    """Settles and writes one claim (see the module docstring for the steps and locks), the pool rows
    locked before the engine runs.

    The portable way: SQLite, and PostgreSQL when settlements.pgcounter could not
    settle the claim exactly (its snapshot kept moving, no pool shard with room).
    On PostgreSQL every shard of the pools is locked (fund_id, shard order) and the
    draws go to shard 0, the fund's allowances spread anew (funds.repository); the
    event is numbered after the pool locks (event order = commit order on a pool).
    """
    claim = registered_claim(session, parse_claim(raw, principal, counter_today(ctx)))
    digest = claim_hash(claim)  # of the claim at the registry's level: stating it or not is the same claim
    hospital_id = claim.hospital.id
    existing = repository.find_by_claim(session, hospital_id, claim.claim_id)
    if existing is not None:
        return replay_or_conflict(existing, digest)
    cc = counter_claim(session, ctx, claim)
    year = cc.policy_year
    limits = counter.pool_limits(cc)  # the pools' sizes, for the shards' allowances (PostgreSQL)
    if pg_connection(session) is not None:
        metrics.POOL_PATHS.labels("locked").inc()

    # step 4: person-year lock (an unidentified patient has no person-year: the pools' locks suffice)
    before = PersonYearTotals() if cc.unidentified else lock_person_year(session, cc.person_id, year)
    existing = repository.find_by_claim(session, hospital_id, claim.claim_id)
    if existing is not None:
        return replay_or_conflict(existing, digest)

    snapshot = read_pools(session, year, cc.fund_ids)  # step 5: unlocked
    comp = compute(cc, before, snapshot)
    if comp.eligible_funds:
        locked = lock_pools(session, year, comp.eligible_funds, limits)  # step 6: pool locks
        if any(locked[f] != snapshot[f] for f in comp.eligible_funds):
            comp = compute(cc, before, {**snapshot, **locked})

    now = ctx.now()
    settlement_id = str(uuid.uuid4())
    accumulators_after = comp.accumulators_json(cc.person_id, year)
    seq = repository.insert_settlement(  # step 7: the unique (hospital_id, claim_id) constraint fires here
        session,
        {
            "settlement_id": settlement_id,
            "hospital_id": hospital_id,
            "claim_id": claim.claim_id,
            "claim_hash": digest,
            "request_body": raw.decode("utf-8", errors="replace"),
            "key_id": principal.key_id,
            "status": "settled",
            "settled_at": now,
            "reversed_at": None,
            "person_id": cc.person_id or None,
            "scheme": cc.prepared.scheme or None,
            "category": cc.prepared.category or None,
            "temporary_id": claim.temporary_id,
            "emergency": claim.visit.emergency,
            "unable_to_pay": claim.unable_to_pay,
            "visit_type": claim.visit.type,
            "admitted": claim.visit.admitted,
            "discharged": claim.visit.discharged,
            "policy_year": year,
            "schedule_version": comp.result["schedule"],
            "pathway": comp.result["pathway"],
            "disease_group": comp.result["disease_group"],
            "result": comp.result,
            "trace": comp.trace,
            "accumulators_after": accumulators_after,
            "contribution": comp.contribution_json(),
            **{f"{name}_fen": value for name, value in comp.fen.items()},
        },
    )
    event_seq = repository.insert_event(session, seq, "settled", now, principal.key_id)
    day = ctx.business_date(now)
    repository.insert_ledger(  # one entry per payer that pays; they sum to the total
        session,
        [
            {
                "settlement_seq": seq, "event_seq": event_seq, "kind": "settled", "hospital_id": hospital_id,
                "layer": layer, "fund": fund, "amount_fen": amount, "business_date": day, "at": now,
            }
            for layer, fund, amount in counter.ledger_amounts(comp)
            if amount
        ],
    )
    if not cc.unidentified:
        add_to_person_year(session, cc.person_id, year, comp.contribution, +1, now)
    add_pool_used(session, year, comp.pool_delta, limits)
    body = computed_body(
        cc, comp, status="settled", settlement_id=settlement_id, settled_at=now, accumulators_after=accumulators_after
    )
    return Outcome(body, created=True)


def after_duplicate(session: Session, principal: Principal, raw: bytes) -> Outcome:
    """After the unique constraint stopped a concurrent double settle: replay the stored, or 409."""
    claim = registered_claim(session, parse_claim(raw, principal))
    row = repository.find_by_claim(session, claim.hospital.id, claim.claim_id)
    if row is None:  # pragma: no cover - the constraint fired, so the row is committed
        raise RuntimeError("duplicate claim vanished")
    return replay_or_conflict(row, claim_hash(claim))


# -- reverse ---------------------------------------------------------------------


def visible(row: R | None, principal: Principal, settlement_id: str) -> R:
    """The settlement if this key may see it; another hospital's is a 404, like a missing one."""
    if row is None or not principal.sees_hospital(row.hospital_id):
        raise not_found(f"no settlement {settlement_id}")
    return row


def reverse(
    session: Session,
    ctx: ServiceContext,
    principal: Principal,
    settlement_id: str,
    reason: str | None,
) -> Outcome:
    """Marks the settlement reversed, writes negating entries, takes its contribution back out.

    Idempotent: a reversed settlement is returned as it is (created=False).
    Later settlements of the person are not recomputed (SPEC §9). On PostgreSQL the
    route reverses in one statement instead (settlements.pgcounter.reverse).
    """
    row = visible(repository.lock(session, settlement_id), principal, settlement_id)  # settlement lock
    if row.status == "reversed":
        return Outcome(body_of(row), created=False)
    contribution = PersonYearTotals(**row.contribution["person_year"])
    pool_delta: dict[str, int] = {f: int(v) for f, v in row.contribution["pool_used"].items()}
    if row.person_id is not None:  # then the person-year lock (an unidentified patient has none)
        lock_person_year(session, row.person_id, row.policy_year)
    lock_pools(session, row.policy_year, [f for f, v in pool_delta.items() if v])  # then pools, in order
    now = ctx.now()
    event_seq = repository.insert_event(session, row.seq, "reversed", now, principal.key_id, reason)
    repository.insert_reversal_ledger(session, row.seq, event_seq, ctx.business_date(now), now)
    if row.person_id is not None:
        add_to_person_year(session, row.person_id, row.policy_year, contribution, -1, now)
    add_pool_used(session, row.policy_year, {f: -v for f, v in pool_delta.items()})
    return Outcome(body_of(repository.mark_reversed(session, row.seq, now)), created=True)


# -- reads -----------------------------------------------------------------------


def get(session: Session, principal: Principal, settlement_id: str) -> dict[str, Any]:
    row = visible(repository.get(session, settlement_id), principal, settlement_id)
    if principal.funds is not None and not repository.paid_by_funds(session, row.seq, principal.funds):
        raise not_found(f"no settlement {settlement_id}")  # none of the key's funds paid it: as if missing
    return funds_view(body_of(row), principal.funds)
