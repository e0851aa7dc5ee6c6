"""The settle unit of work on PostgreSQL: the same steps as service.settle, fewer and shorter locks.

What differs from the portable path (service.settle, still used on SQLite):

- plain SQL on the session's connection (db.pg_connection): no ORM objects on the
  way in or out, one statement per step, the person-year row created-and-locked in
  one upsert;
- the pool rows — one per fund and year, which every charity-eligible claim of the
  year draws on — are not locked before the engine runs. The engine runs on the
  pools as committed (a snapshot). When the claim's charity did not hit a pool's
  limit there (it paid less than the pool had left), the result does not depend
  on the pool's exact use, only on the pool still having room for this draw; so
  the draw is written last, as ``used = used + d WHERE used + d <= pool``, in one
  statement with the settled event and the ledger entries
  (funds.repository.draw_if_room), and the row lock is held for that statement
  and the commit only. If the pool moved so far that the draw no longer fits,
  the whole unit is rolled back and run again the locked way: the pool rows
  locked FOR UPDATE before the engine runs (``locked=True``);
- a claim that finds a pool spent (it pays 0 from it) takes that row FOR SHARE,
  re-reads it and re-runs the engine: while the share lock is held nobody can
  draw on or give back to the pool, so any number of such claims settle side by
  side instead of queueing on the row;
- the settlement's event number (its place in the commit order of the pools it
  touches) is taken while its pool locks are held, as before. Reversals give
  back to the pools in their last statement in the same way (service.reverse).

Exactness: each claim's result equals the engine's on the totals it would see
if the settlements ran one by one in event-number order (tests/service/
test_concurrency.py replays them so).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from psycopg.types.json import Json
from sqlalchemy.orm import Session

from settlement.service import metrics
from settlement.service.accumulators.repository import add_to_person_year, lock_person_year
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.db import pg_connection, pg_execute
from settlement.service.funds.repository import draw_if_room, lock_pools, read_pools, share_lock_pools

from .counter import Computation, CounterClaim, compute
from .models import AMOUNTS


class PoolMoved(Exception):
    """The pool no longer has room for the draw computed on the snapshot: run the locked way."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


FIND = "SELECT 1 FROM settlements WHERE hospital_id = %s AND claim_id = %s"
_SETTLEMENT_COLUMNS = (
    "settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id, status, settled_at,"
    " person_id, scheme, category, visit_type, admitted, discharged, policy_year, schedule_version,"
    " pathway, disease_group, "
    + ", ".join(f"{name}_fen" for name in AMOUNTS)
    + ", result, trace, accumulators_after, contribution"
)
INSERT_SETTLEMENT = (
    f"INSERT INTO settlements ({_SETTLEMENT_COLUMNS}) VALUES ("
    + ", ".join(["%s"] * (18 + len(AMOUNTS) + 4))
    + ") RETURNING seq"
)
# the settled event and its ledger entries in one statement; the event's seq is the one drawn
# under the pool lock (draw_if_room) when the claim drew on a pool, else the next one now
INSERT_EVENT_AND_LEDGER = (
    "WITH e AS (INSERT INTO settlement_events (seq, settlement_seq, kind, at, key_id)"
    " VALUES (COALESCE(%(event_seq)s, nextval(pg_get_serial_sequence('settlement_events', 'seq'))),"
    " %(seq)s, 'settled', %(at)s, %(key_id)s) RETURNING seq)"
    " INSERT INTO ledger_entries"
    " (settlement_seq, event_seq, kind, hospital_id, layer, fund, amount_fen, business_date, at)"
    " SELECT %(seq)s, e.seq, 'settled', %(hospital_id)s, v.layer, v.fund, v.amount, %(day)s, %(at)s"
    " FROM e, unnest(%(layers)s::text[], %(funds)s::text[], %(amounts)s::bigint[]) AS v(layer, fund, amount)"
)


def exists(pg: Any, hospital_id: str, claim_id: str) -> bool:
    return pg_execute(pg, FIND, (hospital_id, claim_id)).fetchone() is not None


def pool_limits(cc: CounterClaim) -> dict[str, int | None]:
    version = cc.tables.schedules.versions[cc.prepared.version]
    return {fund.id: fund.annual_pool_fen for fund in version.charity_funds}


def binding(comp: Computation, used: dict[str, int], limits: dict[str, int | None]) -> list[str]:
    """Eligible funds whose pool limited (or may have limited) this claim's charity."""
    out = []
    for fund, draw in comp.pool_delta.items():
        limit = limits.get(fund)
        if limit is not None and draw >= max(0, limit - used.get(fund, 0)):
            out.append(fund)
    return out


def settle_optimistic(
    session: Session,
    pg: Any,
    ctx: ServiceContext,
    principal: Principal,
    cc: CounterClaim,
    raw: bytes,
    digest: str,
    summary: Callable[..., dict[str, Any]],
    locked: bool = False,
) -> dict[str, Any]:
    """Steps 4-7 of a settle with late pool locks; raises PoolMoved when the locked way is needed.

    ``locked``: the locked way itself — the pools the claim is eligible for are
    locked FOR UPDATE before the engine runs on them, and the draws are exact.
    """
    year = cc.policy_year
    before = lock_person_year(session, cc.person_id, year)  # the person-year lock
    limits = pool_limits(cc)
    snapshot = read_pools(session, year, cc.fund_ids)
    comp = compute(cc, before, snapshot)
    spent: list[str] = []
    if locked:
        if comp.eligible_funds:
            held = lock_pools(session, year, comp.eligible_funds)  # FOR UPDATE, fund_id order
            comp = compute(cc, before, {**snapshot, **held})
        limits = dict.fromkeys(limits)  # the draws are exact under the lock: no room check
    else:
        spent = binding(comp, snapshot, limits)
    if spent:
        # the pool looked spent (or just enough): hold it still (FOR SHARE) and look again
        shared = share_lock_pools(session, year, spent)
        comp = compute(cc, before, {**snapshot, **shared})
        if any(comp.pool_delta[f] for f in spent) or binding(comp, {**snapshot, **shared}, limits) != spent:
            raise PoolMoved  # it must draw on a pool at its limit: only the exclusive lock is exact
        metrics.POOL_PATHS.labels("shared").inc()
    draws = {f: d for f, d in sorted(comp.pool_delta.items()) if d and f not in spent}

    now = ctx.now()
    settlement_id = str(uuid.uuid4())
    claim = cc.claim
    fen = comp.fen
    accumulators_after = comp.accumulators_json(cc.person_id, year)
    seq = pg_execute(
        pg,
        INSERT_SETTLEMENT,
        (
            settlement_id,
            claim.hospital.id,
            claim.claim_id,
            digest,
            raw.decode("utf-8", errors="replace"),
            principal.key_id,
            "settled",
            now,
            cc.person_id,
            cc.prepared.scheme,
            cc.prepared.category,
            claim.visit.type,
            claim.visit.admitted,
            claim.visit.discharged,
            year,
            comp.result["schedule"],
            comp.result["pathway"],
            comp.result["disease_group"],
            *(fen[name] for name in AMOUNTS),
            Json(comp.result, dumps=_dumps),
            Json(comp.trace, dumps=_dumps),
            Json(accumulators_after, dumps=_dumps),
            Json(comp.contribution_json(), dumps=_dumps),
        ),
    ).fetchone()[0]
    add_to_person_year(session, cc.person_id, year, comp.contribution, +1, now)
    entries = [(layer, fund, amount) for layer, fund, amount in ledger_amounts(comp) if amount]
    values: dict[str, Any] = {
        "event_seq": None,
        "seq": seq,
        "at": now,
        "key_id": principal.key_id,
        "hospital_id": claim.hospital.id,
        "day": ctx.business_date(now),
        "layers": [e[0] for e in entries],
        "funds": [e[1] for e in entries],
        "amounts": [e[2] for e in entries],
    }
    drawn = list(draws.items())
    first, last = drawn[:-1], (drawn[-1] if drawn else None)
    for fund, amount in first:  # a second fund (rare): fund_id order, like every other pool lock
        if draw_if_room(session, year, fund, amount, limits.get(fund)) is None:
            raise PoolMoved
    # the last draw, the event and the ledger: one statement, then the commit
    if not write_ledger(session, values, year, last, limits):
        raise PoolMoved
    return summary(
        cc, comp, status="settled", settlement_id=settlement_id, settled_at=now,
        accumulators_after=accumulators_after,
    )


def write_ledger(
    session: Session,
    values: dict[str, Any],
    year: int,
    draw: tuple[str, int] | None,
    limits: dict[str, int | None],
) -> bool:
    """The ``settled`` event and one ledger entry per paying payer, in one statement.

    With ``draw`` (fund, amount) the same statement draws on that pool first
    (funds.repository.draw_if_room); False when the pool has no room left.
    """
    if draw is None:
        pg = pg_connection(session)
        pg_execute(pg, INSERT_EVENT_AND_LEDGER, values)
        return True
    fund, amount = draw
    return draw_if_room(session, year, fund, amount, limits.get(fund), ledger=values) is not None


def ledger_amounts(comp: Computation) -> list[tuple[str, str, int]]:
    """One entry per payer (zero amounts are skipped by the caller); they sum to the total."""
    amounts: list[tuple[str, str, int]] = [
        (p, p, comp.fen[p]) for p in ("basic", "critical_illness", "medical_assistance")
    ]
    amounts += [("charity", fund, fen) for fund, fen in comp.charity_fen.items()]
    amounts += [
        ("backstop", "backstop", comp.fen["backstop"]),
        ("patient", "patient", comp.fen["patient_pays"]),
        ("hospital", "hospital", comp.fen["hospital_bears"]),
    ]
    total = sum(a for _, _, a in amounts)
    if total != comp.fen["total"]:  # the engine's invariant (SPEC §5.5); never write a ledger that breaks it
        raise RuntimeError(
            f"ledger of claim {comp.result['claim_id']} sums to {total}, total is {comp.fen['total']}"
        )
    return amounts
