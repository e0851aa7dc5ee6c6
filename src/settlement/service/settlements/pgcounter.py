"""The counter on PostgreSQL in two statements: read a snapshot, then write it if it still holds.

A settle at the counter is dominated by round trips and per-statement cost,
not by the rules (the engine's batch of one is ~0.1 ms). So on PostgreSQL the
hot routes take a plain psycopg connection in autocommit mode
(``Database.counter``) and send:

1. **one read** (:data:`READ`): the caller's key, an earlier settlement under
   (hospital id, claim_id), the person's registry identity on the admission
   date, the person-year totals and charity rows, and the year's pools — one
   snapshot, no lock;
2. the engine runs on that snapshot (same ``compute`` as every other path);
3. **one write**: ``counter_settle(...)`` (:mod:`.pgfunctions`), a single statement
   that is its own transaction. It locks the person-year row and checks the
   totals are still the snapshot's, holds spent pools FOR SHARE and checks
   them, draws on the others with ``used + d <= pool``, writes the settlement,
   the totals, the event and the ledger, and commits. Locks are held for that
   one statement and its commit only — never while Python runs.

If the snapshot no longer holds (another settlement of the same person, or a
pool moved), the function raises ``counter_moved`` and writes nothing; the
claim is read and computed again, and after :data:`ATTEMPTS` tries it goes the
locked way (service.settle: the person-year row and pools locked before the
engine). A claim that takes the last money of a pool is written only if the
pool's use is still the snapshot's, so racing claims at a pool's end retry
instead of queueing on an exclusive lock held across the engine.

Exactness: a result is committed only when every number the engine read is
still the committed one under the locks, so it equals the engine's result on
the totals at its place in event order (tests/service/test_concurrency.py
replays every settlement in event order and compares).

A preview is the read and the engine: one round trip.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson

from settlement.claims import Claim, ClaimError
from settlement.claims.person_id import PersonIdError, check_person_id, normalize_person_id
from settlement.engine.state import EMERGENCY_RELIEF, PersonYearTotals
from settlement.service import metrics, pgdirect
from settlement.service.accumulators.repository import TOTAL_COLUMNS, totals_from_row, totals_values
from settlement.service.auth.keys import Role, key_id_of
from settlement.service.auth.service import KEY_SQL, Principal, bearer_key, check_role, principal_from_row
from settlement.service.context import ServiceContext
from settlement.service.db import RetriesExhausted, as_dbapi_error, is_retryable, pg_direct, pg_execute
from settlement.service.errors import ServiceError, claim_problem, not_found, unauthorized
from settlement.service.funds.repository import POOL_SHARDS
from settlement.service.hospitals.service import bind_level
from settlement.service.persons.service import check_identity
from settlement.service.pgloop import Reader

from . import counter
from .counter import Computation, CounterClaim, compute, prepare
from .hashing import claim_hash
from .models import AMOUNTS
from .service import (
    Outcome,
    body_of,
    check_hospital,
    computed_body,
    counter_today,
    decode_claim,
    record_preview,
    replay_or_conflict,
)


def json_text(value: Any) -> str:
    """A JSON column's value as text, as the counter's statements send it."""
    return orjson.dumps(value).decode()


ATTEMPTS = 3
"""Optimistic tries before the locked way; a retry needs another settlement of the same person
(or a pool moving under a claim) between one claim's read and its write."""

MOVED = "SE409"  # the SQLSTATE counter_settle raises when the snapshot no longer holds
NEEDS_LOCK = "SE410"  # ... and when no shard of a pool has room for a draw the pool as a whole may have

TOTALS = TOTAL_COLUMNS
"""The person-year totals' columns, in the order counter_settle (service.settlements.pgfunctions, generated
from the same declaration, engine.totals) reads and adds them."""


def _read_statement(settling: bool) -> tuple[str, tuple[str, ...]]:
    """The one read's text (``$n`` placeholders) and its parameters' names, in order.

    A preview does not look for an earlier settlement, so its statement has no
    settlements join at all. Both read the claim's hospital's registered level (hospitals): the level
    the engine uses at the counter. A settle's join can use the unique (hospital_id,
    claim_id) index only (migration 0003): before it, a plan chosen on a young
    table's statistics walked ``ix_settlements_hospital_id_seq`` through every
    settlement of the hospital (docs/PERFORMANCE.md §3, steps 20 and 21).
    """
    sql = (
        "SELECT k.key_hash, k.role, k.hospital_id, k.funds, k.revoked_at, "
        + ("s.seq" if settling else "NULL::bigint")
        + ", i.scheme, i.category, "
        + ", ".join(f"a.{c}" for c in TOTALS)
        + ", (SELECT json_object_agg(c.fund_id, c.paid) FROM person_year_charity c"
        "     WHERE c.person_id = :pid AND c.policy_year = :year::int)"
        ", (SELECT json_object_agg(f.fund_id, f.used) FROM (SELECT fund_id, sum(used) AS used FROM fund_pools"
        "     WHERE policy_year = :year::int AND fund_id = ANY(:funds::text[]) GROUP BY fund_id) f)"
        ", h.level"
        " FROM (VALUES (1)) AS one(x)"
        " LEFT JOIN api_keys k ON k.key_id = :key_id"
        " LEFT JOIN hospitals h ON h.hospital_id = :hospital"
        + (" LEFT JOIN settlements s ON s.hospital_id = :hospital AND s.claim_id = :claim" if settling else "")
        + " LEFT JOIN LATERAL (SELECT p.scheme, c.category FROM persons p LEFT JOIN person_categories c"
        "   ON c.person_id = p.person_id AND c.valid_from <= :day::date"
        "   AND (c.valid_to IS NULL OR c.valid_to >= :day::date)"
        "   WHERE p.person_id = :pid LIMIT 1) i ON true"
        " LEFT JOIN person_year_accumulators a ON a.person_id = :pid AND a.policy_year = :year::int"
    )
    names: list[str] = []
    for name in ("key_id", "hospital", "claim", "pid", "day", "year", "funds"):
        if f":{name}" in sql:
            names.append(name)
            sql = sql.replace(f":{name}", f"${len(names)}")
    return sql, tuple(names)


READ, READ_PARAMS = _read_statement(settling=True)
"""The one read of a settle (sent with pgdirect: text in, text out; :func:`_read_row` converts)."""
PREVIEW_READ, PREVIEW_READ_PARAMS = _read_statement(settling=False)
WRITE_ARGS: tuple[tuple[str, str], ...] = (
    ("settlement_id", "text"), ("hospital_id", "text"), ("claim_id", "text"), ("claim_hash", "text"),
    ("request_body", "text"), ("key_id", "text"), ("at", "timestamptz"), ("person_id", "text"),
    ("scheme", "text"), ("category", "text"), ("visit_type", "text"), ("admitted", "date"),
    ("discharged", "date"), ("year", "integer"), ("schedule_version", "text"), ("pathway", "text"),
    ("disease_group", "text"), ("amounts", "bigint[]"), ("result", "json"), ("trace", "json"),
    ("accumulators_after", "json"), ("contribution", "json"), ("expect_totals", "bigint[]"),
    ("delta_totals", "bigint[]"), ("expect_charity", "text[]"), ("charity_funds", "text[]"),
    ("charity_amounts", "bigint[]"), ("pool_funds", "text[]"), ("pool_amounts", "bigint[]"),
    ("pool_limits", "bigint[]"), ("pool_expect", "bigint[]"), ("day", "date"), ("ledger_layers", "text[]"),
    ("ledger_funds", "text[]"), ("ledger_amounts", "bigint[]"), ("shards", "integer"),
)
"""counter_settle's arguments (:mod:`.pgfunctions`, ``p_`` + name) and their types: the call names each
one, so the order here is only the order of :func:`write`'s values, and each is sent as text (pgdirect)
cast to its type (arrays as literals: _bigints, pgdirect.text_array)."""
WRITE = (
    "SELECT settlement_seq, event_seq FROM counter_settle("
    + ", ".join(f"p_{name} => ${n}::{kind}" for n, (name, kind) in enumerate(WRITE_ARGS, start=1))
    + ")"
)



def _bigints(values: Any) -> str:
    """A bigint[] literal: integers (the engine's fen, never text from a client) and NULL for None."""
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


class Moved(Exception):
    """The snapshot no longer holds: read and compute again."""


class UseLockedPath(Exception):
    """The optimistic way cannot give an exact result for this claim: settle it the locked way."""


def hospital_principal(key: str, row: tuple[Any, ...] | None) -> Principal:
    """401 for a missing, revoked or wrong key; 403 unless it is a hospital key."""
    return check_role(principal_from_row(key, row), (Role.HOSPITAL,))


class SettledBefore(Exception):
    """The claim was settled before: it is replayed (or a 409), nothing else is checked."""

    def __init__(self, principal: Principal, claim: Claim) -> None:
        super().__init__("settled before")
        self.principal = principal
        self.claim = claim
        """At its hospital's registered level: what claim_hash hashes."""


@dataclass
class Snapshot:
    principal: Principal
    cc: CounterClaim
    before: PersonYearTotals
    pools: dict[str, int]


def read(conn: Any, ctx: ServiceContext, key: str, raw: bytes, claim: Claim | None) -> Snapshot:
    """A settle's one read, then every check before the engine in the SPEC §6 / service order.

    ``claim`` is None when the body did not validate: then only the key is
    looked up (an invalid key is a 401 whatever the body) and the claim's error
    is raised.
    """
    key_id = key_id_of(key)
    if key_id is None:
        raise unauthorized("the API key is malformed")
    if claim is None:
        hospital_principal(key, pg_execute(conn, KEY_SQL, (key_id,)).fetchone())
        decode_claim(raw, counter_today(ctx))  # raises the claim's own error
        raise AssertionError("decode_claim accepted a body it refused before")
    sql, params = read_statement(ctx, key_id, claim, settling=True)
    return snapshot(ctx, key, claim, pg_direct(conn, sql, params)[0])


def read_statement(ctx: ServiceContext, key_id: str, claim: Claim, *, settling: bool) -> tuple[str, list[Any]]:
    """The one read's statement and its values (READ, or PREVIEW_READ without the earlier settlement)."""
    values = {
        "key_id": key_id,
        "hospital": claim.hospital.id,
        "claim": claim.claim_id,
        "pid": "" if claim.temporary_id is not None else normalize_person_id(claim.patient.person_id),
        "day": claim.visit.admitted,
        "year": claim.visit.discharged.year,
        "funds": [*ctx.tables.schedules.fund_ids, EMERGENCY_RELIEF],
    }
    sql, names = (READ, READ_PARAMS) if settling else (PREVIEW_READ, PREVIEW_READ_PARAMS)
    return sql, [values[name] for name in names]


def snapshot(ctx: ServiceContext, key: str, claim: Claim, found: list[bytes | None]) -> Snapshot:
    """Every check before the engine, in the SPEC §6 / service order, on the read's row."""
    row = _read_row(found)
    principal = hospital_principal(key, row[0:5] if row[0] is not None else None)
    check_hospital(claim, principal)
    claim = bind_level(claim, row[10 + len(TOTALS)])  # 422 unless registered (and at the level stated)
    if row[5] is not None:  # replayed or 409 by the caller, before any other check (as service.settle)
        raise SettledBefore(principal, claim)
    scheme: str | None = None
    category: str | None = None
    if claim.temporary_id is None:  # an unidentified patient has no person id and needs no registry entry
        try:
            check_person_id(claim.patient.person_id, claim.visit.admitted)
        except PersonIdError as exc:
            raise ServiceError(422, "invalid_person_id", str(exc), claim_id=claim.claim_id) from None
        person_id = normalize_person_id(claim.patient.person_id)
        scheme, category = check_identity(claim, person_id, None if row[6] is None else (row[6], row[7]))
    try:
        cc = prepare(claim, ctx.tables, scheme, category)
    except ClaimError as exc:
        raise claim_problem(exc) from None
    charity = {f: int(v) for f, v in (row[8 + len(TOTALS)] or {}).items()}
    before = totals_from_row(row[8 : 8 + len(TOTALS)], charity)
    used = row[9 + len(TOTALS)] or {}
    pools = {f: int(used.get(f, 0)) for f in cc.fund_ids}
    return Snapshot(principal, cc, before, pools)


def _read_row(v: list[bytes | None]) -> tuple[Any, ...]:
    """READ's text columns as the values the checks read: the key's row (revoked_at only tested for
    NULL), the earlier settlement's seq, the identity, the totals (None: no row yet), charity and pools."""
    n = len(TOTALS)
    head = tuple(None if x is None else x.decode() for x in v[0:8])
    totals = tuple(None if x is None else int(x) for x in v[8 : 8 + n])
    charity, pools = (None if x is None else orjson.loads(x) for x in v[8 + n : 10 + n])
    level = v[10 + n]  # the hospital's registered level (None: not registered)
    return (*head, *totals, charity, pools, None if level is None else int(level))


def write(conn: Any, ctx: ServiceContext, snap: Snapshot, comp: Computation, raw: bytes, digest: str) -> Outcome:
    """counter_settle: written exactly, or Moved (nothing written)."""
    cc = snap.cc
    claim = cc.claim
    year = cc.policy_year
    limits = counter.pool_limits(cc)
    spent = comp.pools_bound  # the pools whose room decided the amount (the engine's): their use must not move
    pool_funds: list[str] = []
    amounts: list[int | None] = []
    pool_limits: list[int | None] = []
    expect: list[int | None] = []
    for fund in sorted(comp.pool_delta):  # fund_id order, as every pool lock
        if fund in spent:  # held FOR SHARE when it pays 0 from it, else drawn only on the same use
            pool_funds.append(fund)
            amounts.append(comp.pool_delta[fund] or None)
            pool_limits.append(limits.get(fund))
            expect.append(snap.pools.get(fund, 0))
        elif comp.pool_delta[fund]:
            pool_funds.append(fund)
            amounts.append(comp.pool_delta[fund])
            pool_limits.append(limits.get(fund))
            expect.append(None)
    contribution = comp.contribution
    charity = sorted((f, a) for f, a in contribution.charity_paid.items() if a)
    entries = [(layer, fund, amount) for layer, fund, amount in counter.ledger_amounts(comp) if amount]
    now = ctx.now()
    settlement_id = str(uuid.uuid4())
    accumulators_after = comp.accumulators_json(cc.person_id, year)
    fen = comp.fen
    values: dict[str, Any] = {
        "settlement_id": settlement_id, "hospital_id": claim.hospital.id, "claim_id": claim.claim_id,
        "claim_hash": digest, "request_body": raw.decode("utf-8", errors="replace"),
        "key_id": snap.principal.key_id, "at": now, "person_id": cc.person_id, "scheme": cc.prepared.scheme,
        "category": cc.prepared.category, "visit_type": claim.visit.type, "admitted": claim.visit.admitted,
        "discharged": claim.visit.discharged, "year": year, "schedule_version": comp.result["schedule"],
        "pathway": comp.result["pathway"], "disease_group": comp.result["disease_group"],
        "amounts": _bigints(fen[name] for name in AMOUNTS), "result": json_text(comp.result),
        "trace": json_text(comp.trace), "accumulators_after": json_text(accumulators_after),
        "contribution": json_text(comp.contribution_json()),
        "expect_totals": _bigints(totals_values(snap.before)), "delta_totals": _bigints(totals_values(contribution)),
        "expect_charity": [f"{f}:{v}" for f, v in sorted(snap.before.charity_paid.items()) if v],
        "charity_funds": [f for f, _ in charity], "charity_amounts": _bigints(a for _, a in charity),
        "pool_funds": pool_funds, "pool_amounts": _bigints(amounts), "pool_limits": _bigints(pool_limits),
        "pool_expect": _bigints(expect), "day": ctx.business_date(now), "ledger_layers": [e[0] for e in entries],
        "ledger_funds": [e[1] for e in entries], "ledger_amounts": _bigints(e[2] for e in entries),
        "shards": POOL_SHARDS,
    }
    params = tuple(values[name] for name, _ in WRITE_ARGS)
    import psycopg

    try:
        call_write(conn, params)
    except psycopg.Error as exc:
        if exc.sqlstate in (MOVED, "40P01"):  # moved, or a deadlock: nothing was written
            raise Moved(exc.sqlstate) from None
        if exc.sqlstate == NEEDS_LOCK:  # no pool shard had room for the draw: nothing was written
            raise UseLockedPath from None
        raise as_dbapi_error(WRITE, params, exc, conn) from exc
    if any(comp.pool_delta[f] for f in spent):
        metrics.POOL_PATHS.labels("last").inc()
    elif spent:
        metrics.POOL_PATHS.labels("shared").inc()
    metrics.POOL_PATHS.labels("late").inc()
    body = computed_body(
        cc, comp, status="settled", settlement_id=settlement_id, settled_at=now,
        accumulators_after=accumulators_after,
    )
    return Outcome(body, created=True)


def call_write(conn: Any, params: tuple[Any, ...]) -> tuple[int, int]:
    """The write statement (its own transaction: the connection is in autocommit mode)."""
    settlement_seq, event_seq = pgdirect.execute(conn, WRITE, params)[0]
    if settlement_seq is None or event_seq is None:  # pragma: no cover - counter_settle always returns both
        raise RuntimeError("counter_settle returned no sequence numbers")
    return int(settlement_seq), int(event_seq)


def _key_and_claim(ctx: ServiceContext, header: str | None, raw: bytes) -> tuple[str, Claim | None]:
    """The caller's key (401 without one) and the claim, None if it does not validate: its error
    comes after the key's (read)."""
    key = bearer_key(header)
    try:
        return key, decode_claim(raw, counter_today(ctx))
    except ServiceError:
        return key, None


def settle(ctx: ServiceContext, header: str | None, raw: bytes, known: list[Principal]) -> Outcome:
    """Settles on the counter connection, or replays the claim settled before (409 if another claim).

    Raises UseLockedPath when the locked way must settle it.

    Run once more on another connection if the connection is lost under it
    (Database.on_counter), and that is safe: the write is one statement, its own
    transaction, so it either committed whole or left nothing. If it committed and
    only its answer was lost, the second run's read finds the settlement under
    (hospital id, claim_id) (unique constraint) and replays it; if not, the claim is
    read, computed and written anew on the totals then committed.
    """
    key, claim = _key_and_claim(ctx, header, raw)
    return ctx.db.on_counter(lambda conn: _settle_on(conn, ctx, key, raw, claim, known))


def _settle_on(
    conn: Any, ctx: ServiceContext, key: str, raw: bytes, claim: Claim | None, known: list[Principal]
) -> Outcome:
    digest = ""
    for attempt in range(ATTEMPTS):
        try:
            snap = read(conn, ctx, key, raw, claim)
        except SettledBefore as before:
            known.append(before.principal)
            return replay(conn, before.claim, claim_hash(before.claim))
        if not known:
            known.append(snap.principal)
        if snap.cc.emergency_relief or snap.cc.unidentified:
            # the emergency relief pool is drawn the portable way only (service.settle): counter_settle (0002)
            # writes neither that pool nor an unidentified patient; such claims are few
            raise UseLockedPath
        comp = compute(snap.cc, snap.before, snap.pools)
        # of the claim at its registered level (service.settle hashes the same)
        digest = digest or claim_hash(snap.cc.claim)
        try:
            return write(conn, ctx, snap, comp, raw, digest)
        except Moved:
            if attempt + 1 < ATTEMPTS:
                metrics.TRANSACTION_RETRIES.inc()
    raise UseLockedPath


STORED_COLUMNS = (
    "settlement_id", "status", "hospital_id", "settled_at", "reversed_at", "claim_id", "person_id", "scheme",
    "category", "result", "trace", "accumulators_after", "claim_hash", "temporary_id", "emergency", "unable_to_pay",
)
REPLAY = f"SELECT {', '.join(STORED_COLUMNS)} FROM settlements WHERE hospital_id = %s AND claim_id = %s"


def replay(conn: Any, claim: Claim, digest: str) -> Outcome:
    """The claim was settled before: its stored result (same claim) or 409 (another claim, same id)."""
    found = pg_execute(conn, REPLAY, (claim.hospital.id, claim.claim_id)).fetchone()
    return replay_or_conflict(_stored(found), digest)


def _stored(found: tuple[Any, ...]) -> Any:
    """A stored settlement's row as body_of reads it (the columns of REPLAY / STORED, in order)."""
    return SimpleNamespace(**dict(zip(STORED_COLUMNS, found, strict=True)))


KEY_READ = KEY_SQL.replace("%s", "$1")
"""auth.service.KEY_SQL with pgdirect's placeholder: a preview's only read when its body does not validate."""


async def preview(ctx: ServiceContext, header: str | None, raw: bytes, conns: Reader) -> dict[str, Any]:
    """The result on the totals committed now: one read awaited on the event loop (service.pgloop),
    the engine, nothing written.

    Refused in :func:`read`'s order: no key, a malformed key, a key not valid or not a
    hospital's (a read of the key alone when the body does not validate), then the body's error.
    """
    key = bearer_key(header)
    refused: ServiceError | None = None
    try:
        claim: Claim | None = decode_claim(raw, counter_today(ctx))
    except ServiceError as exc:
        claim, refused = None, exc
    key_id = key_id_of(key)
    if key_id is None:
        raise unauthorized("the API key is malformed")
    if claim is None:
        found = await conns.execute(KEY_READ, [key_id])
        hospital_principal(key, tuple(None if v is None else v.decode() for v in found[0]) if found else None)
        assert refused is not None
        raise refused
    sql, params = read_statement(ctx, key_id, claim, settling=False)
    found = await conns.execute(sql, params)
    return preview_body(ctx, snapshot(ctx, key, claim, found[0]))


def preview_body(ctx: ServiceContext, snap: Snapshot) -> dict[str, Any]:
    cc = snap.cc
    comp = compute(cc, snap.before, snap.pools)
    record_preview(ctx, snap.principal, cc)
    return computed_body(
        cc, comp, status="preview", settlement_id=None, settled_at=None,
        accumulators_after=comp.accumulators_json(cc.person_id, cc.policy_year),
    )


REVERSE = "SELECT outcome, settlement_seq FROM counter_reverse(%s, %s, %s, %s, %s, %s)"
STORED = f"SELECT {', '.join(STORED_COLUMNS)} FROM settlements WHERE seq = %s"
REVERSERS = (Role.HOSPITAL, Role.ADMIN)


def reverse(ctx: ServiceContext, header: str | None, settlement_id: str, reason: str | None) -> Outcome:
    """A reversal in one statement (counter_reverse, migration 0002); created=False if it was reversed before.

    Locks, in the order of every other writer: the settlement row, the person-year
    row, the pool rows by fund_id. A deadlock runs it again (nothing was written).
    """
    key = bearer_key(header)
    key_id = key_id_of(key)
    if key_id is None:
        raise unauthorized("the API key is malformed")
    return ctx.db.on_counter(lambda conn: _reverse_on(conn, ctx, key, key_id, settlement_id, reason))


def _reverse_on(
    conn: Any, ctx: ServiceContext, key: str, key_id: str, settlement_id: str, reason: str | None
) -> Outcome:
    """The reversal on one connection. Safe to run again after a lost connection: counter_reverse
    either committed (the second run finds the settlement reversed: the same body, created=False)
    or left nothing."""
    principal = check_role(principal_from_row(key, pg_execute(conn, KEY_SQL, (key_id,)).fetchone()), REVERSERS)
    hospital = principal.hospital_id if principal.role == Role.HOSPITAL else None
    for attempt in range(ctx.settings.transaction_retries + 1):
        now = ctx.now()
        params = (settlement_id, hospital, now, principal.key_id, reason, ctx.business_date(now))
        try:
            outcome, seq = pg_execute(conn, REVERSE, params).fetchone()
            break
        except Exception as exc:  # as db.run_transaction: retried, then 503 busy
            if not is_retryable(exc):
                raise
            if attempt == ctx.settings.transaction_retries:
                raise RetriesExhausted(str(exc)) from exc
            metrics.TRANSACTION_RETRIES.inc()
    if outcome == "not_found":  # another hospital's settlement is a 404, like a missing one
        raise not_found(f"no settlement {settlement_id}")
    found = pg_execute(conn, STORED, (seq,)).fetchone()
    return Outcome(body_of(_stored(found)), created=outcome == "reversed")
