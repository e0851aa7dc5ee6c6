"""The locked way of a settle on PostgreSQL, and what it shares with the counter's write.

settlements.pgcounter settles almost every claim in two statements without
holding a lock while Python runs. When it cannot settle a claim exactly (its
snapshot kept moving, or no pool shard had room for its draw although the pool
had), the route comes here: one transaction on the session's connection, plain
SQL, the person-year row created-and-locked in one upsert, then every shard of
the pools the claim is eligible for locked FOR UPDATE before the engine runs
on their sums, so the result is exact whatever the other settlements do; the
draws go to shard 0 and the fund's allowances are spread anew. The event is
numbered after the pool locks (event order = commit order on each pool).

Exactness: each claim's result equals the engine's on the totals it would see
if the settlements ran one by one in event-number order (tests/service/
test_concurrency.py replays them so, with both ways racing).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from psycopg.types.json import Json
from sqlalchemy.orm import Session

from settlement.engine.state import EMERGENCY_RELIEF, PersonYearTotals
from settlement.service.accumulators.repository import add_to_person_year, lock_person_year
from settlement.service.auth.service import Principal
from settlement.service.context import ServiceContext
from settlement.service.db import pg_execute
from settlement.service.funds.repository import add_pool_used, lock_pools, read_pools

from . import counter
from .counter import Computation, CounterClaim, compute
from .models import AMOUNTS


def json_text(value: Any) -> str:
    """A JSON column's value as text, as the counter's statements send it."""
    return orjson.dumps(value).decode()


FIND = "SELECT 1 FROM settlements WHERE hospital_id = %s AND claim_id = %s"
_SETTLEMENT_COLUMNS = (
    "settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id, status, settled_at,"
    " person_id, scheme, category, visit_type, admitted, discharged, policy_year, schedule_version,"
    " pathway, disease_group, "
    + ", ".join(f"{name}_fen" for name in AMOUNTS)
    + ", result, trace, accumulators_after, contribution, temporary_id, emergency, unable_to_pay"
)
INSERT_SETTLEMENT = (
    f"INSERT INTO settlements ({_SETTLEMENT_COLUMNS}) VALUES ("
    + ", ".join(["%s"] * (18 + len(AMOUNTS) + 7))
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
    limits = {fund.id: fund.annual_pool_fen for fund in version.charity_funds}
    if version.emergency_relief is not None:
        limits[EMERGENCY_RELIEF] = version.emergency_relief.annual_pool_fen
    return limits


def binding(comp: Computation, used: dict[str, int], limits: dict[str, int | None]) -> list[str]:
    """Eligible funds whose pool limited (or may have limited) this claim's charity."""
    out = []
    for fund, draw in comp.pool_delta.items():
        limit = limits.get(fund)
        if limit is not None and draw >= max(0, limit - used.get(fund, 0)):
            out.append(fund)
    return out


def settle_locked(
    session: Session,
    pg: Any,
    ctx: ServiceContext,
    principal: Principal,
    cc: CounterClaim,
    raw: bytes,
    digest: str,
    summary: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """Steps 4-7 of a settle, the locked way: exact whatever the other settlements do.

    The person-year row is locked, then every shard of the pools the claim is
    eligible for (FOR UPDATE, fund_id and shard order) before the engine runs on
    their sums; the draws go to shard 0 and the fund's allowances are spread
    anew (funds.repository.add_pool_used). Used when settlements.pgcounter cannot
    settle a claim exactly (a snapshot that kept moving, no shard with room).
    """
    year = cc.policy_year
    # the person-year lock; an unidentified patient has no person-year, the pools' locks suffice
    before = PersonYearTotals() if cc.unidentified else lock_person_year(session, cc.person_id, year)
    limits = pool_limits(cc)
    snapshot = read_pools(session, year, cc.fund_ids)
    comp = compute(cc, before, snapshot)
    if comp.eligible_funds:
        held = lock_pools(session, year, comp.eligible_funds, limits)  # FOR UPDATE, fund_id, shard order
        comp = compute(cc, before, {**snapshot, **held})

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
            cc.person_id or None,
            cc.prepared.scheme or None,
            cc.prepared.category or None,
            claim.visit.type,
            claim.visit.admitted,
            claim.visit.discharged,
            year,
            comp.result["schedule"],
            comp.result["pathway"],
            comp.result["disease_group"],
            *(fen[name] for name in AMOUNTS),
            Json(comp.result, dumps=json_text),
            Json(comp.trace, dumps=json_text),
            Json(accumulators_after, dumps=json_text),
            Json(comp.contribution_json(), dumps=json_text),
            claim.temporary_id,
            claim.visit.emergency,
            claim.unable_to_pay,
        ),
    ).fetchone()[0]
    if not cc.unidentified:
        add_to_person_year(session, cc.person_id, year, comp.contribution, +1, now)
    add_pool_used(session, year, comp.pool_delta, limits)
    entries = [(layer, fund, amount) for layer, fund, amount in counter.ledger_amounts(comp) if amount]
    values: dict[str, Any] = {
        "event_seq": None,  # numbered now: after the pool locks (event order = commit order on a pool)
        "seq": seq,
        "at": now,
        "key_id": principal.key_id,
        "hospital_id": claim.hospital.id,
        "day": ctx.business_date(now),
        "layers": [e[0] for e in entries],
        "funds": [e[1] for e in entries],
        "amounts": [e[2] for e in entries],
    }
    pg_execute(pg, INSERT_EVENT_AND_LEDGER, values)
    return summary(
        cc, comp, status="settled", settlement_id=settlement_id, settled_at=now,
        accumulators_after=accumulators_after,
    )
