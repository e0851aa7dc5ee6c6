# ruff: noqa: E501
"""PostgreSQL: the counter's write units ``counter_settle`` and ``counter_reverse``, generated.

Their person-year totals (the row's columns, the ``p_expect_totals`` /
``p_delta_totals`` positions, the contribution's JSON keys) come from the one
declaration, :data:`settlement.engine.totals.TOTALS`; the rest is the text of
migration 0002 (what each step checks and in which lock order is explained
there and in :mod:`.pgcounter`).

The functions are *repeatable*: :func:`settlement.service.migrate.upgrade`
re-creates them from the current declaration after alembic has brought the
database to head, in the same transaction (:func:`refresh`). So a new total
is one line in the declaration, a migration adding its column, and the rule.
The arguments stay those of :data:`.pgcounter.WRITE_ARGS` (a test holds both
to the database's signature).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from settlement.engine.totals import TOTALS, Total

_IND = "\n        "


def counter_settle_body(totals: Sequence[Total] = TOTALS) -> str:
    """counter_settle's PL/pgSQL body (what ``pg_proc.prosrc`` holds) for these totals."""
    names = [t.column for t in totals]
    columns = _IND.join(f"{c}," for c in names).rstrip(",")
    returning = _IND.join(f"a.{c}," for c in names).rstrip(",")
    zeros = ", ".join("0" for _ in names)
    adds = ",".join(f"{_IND}{c} = {c} + p_delta_totals[{i}]" for i, c in enumerate(names, start=1))
    return _SETTLE.format(columns=columns, zeros=zeros, returning=returning, adds=adds)


def counter_reverse_body(totals: Sequence[Total] = TOTALS) -> str:
    """counter_reverse's PL/pgSQL body: each total less the contribution's member (0 when absent: a
    settlement recorded before the total existed added nothing to it)."""
    subtracts = []
    for t in totals:
        member = f"v_py ->> '{t.field}'" if t.key is None else f"v_py -> '{t.field}' ->> '{t.key}'"
        subtracts.append(f"{_IND}{t.column} = {t.column} - coalesce(({member})::bigint, 0)")
    return _REVERSE.format(subtracts=",".join(subtracts))


SETTLE_ARGS = """
    p_settlement_id text, p_hospital_id text, p_claim_id text, p_claim_hash text, p_request_body text,
    p_key_id text, p_at timestamptz, p_person_id text, p_scheme text, p_category text, p_visit_type text,
    p_admitted date, p_discharged date, p_year integer, p_schedule_version text, p_pathway text,
    p_disease_group text, p_amounts bigint[], p_result json, p_trace json, p_accumulators_after json,
    p_contribution json,
    p_expect_totals bigint[], p_delta_totals bigint[], p_expect_charity text[],
    p_charity_funds text[], p_charity_amounts bigint[],
    p_pool_funds text[], p_pool_amounts bigint[], p_pool_limits bigint[], p_pool_expect bigint[],
    p_day date, p_ledger_layers text[], p_ledger_funds text[], p_ledger_amounts bigint[], p_shards integer,
    OUT settlement_seq bigint, OUT event_seq bigint
"""
REVERSE_ARGS = """
    p_settlement_id text, p_hospital_id text, p_at timestamptz, p_key_id text, p_reason text, p_day date,
    OUT outcome text, OUT settlement_seq bigint
"""


def statements() -> dict[str, str]:
    """Function name -> its CREATE OR REPLACE FUNCTION statement (same signatures as migration 0002)."""
    return {name: _create(name, args, body) for name, (args, body) in _functions().items()}


def _functions() -> dict[str, tuple[str, str]]:
    """Function name -> (its argument list, its generated body)."""
    return {
        "counter_settle": (SETTLE_ARGS, counter_settle_body()),
        "counter_reverse": (REVERSE_ARGS, counter_reverse_body()),
    }


def _create(name: str, args: str, body: str) -> str:
    return f"CREATE OR REPLACE FUNCTION {name}({args}) LANGUAGE plpgsql AS $fn${body}$fn$"


def refresh(conn: Any) -> list[str]:
    """Re-creates each function whose body in the database is not the generated one; returns their names.

    ``conn``: a SQLAlchemy connection to PostgreSQL at the head revision, inside the migration's
    transaction (it holds migrate.ADVISORY_LOCK)."""
    from sqlalchemy import text

    stored = dict(
        conn.execute(
            text("SELECT proname, prosrc FROM pg_proc WHERE proname IN ('counter_settle', 'counter_reverse')"
                 " AND pronamespace = 'public'::regnamespace")
        ).all()
    )
    changed = []
    for name, (args, body) in _functions().items():
        if stored.get(name) != body:
            conn.execute(text(_create(name, args, body)))  # as alembic's op.execute: text(), so % and :: pass
            changed.append(name)
    return changed


_SETTLE = r"""
DECLARE
    v_totals bigint[];
    v_charity text[];
    v_used bigint;
    v_shard smallint;
    i integer;
    attempt integer;
BEGIN
    INSERT INTO person_year_accumulators AS a (person_id, policy_year,
        {columns})
    VALUES (p_person_id, p_year, {zeros})
    ON CONFLICT (person_id, policy_year) DO UPDATE SET updated_at = a.updated_at
    RETURNING ARRAY[
        {returning}] INTO v_totals;
    IF v_totals IS DISTINCT FROM p_expect_totals THEN
        RAISE EXCEPTION USING ERRCODE = 'SE409', MESSAGE = 'counter_moved', DETAIL = 'person-year totals';
    END IF;
    SELECT coalesce(array_agg(c.fund_id || ':' || c.paid ORDER BY c.fund_id COLLATE "C"), '{{}}') INTO v_charity
        FROM person_year_charity c
        WHERE c.person_id = p_person_id AND c.policy_year = p_year AND c.paid <> 0;
    IF v_charity IS DISTINCT FROM p_expect_charity THEN
        RAISE EXCEPTION USING ERRCODE = 'SE409', MESSAGE = 'counter_moved', DETAIL = 'person charity';
    END IF;

    INSERT INTO settlements (settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id,
        status, settled_at, person_id, scheme, category, visit_type, admitted, discharged, policy_year,
        schedule_version, pathway, disease_group, total_fen, fully_self_paid_fen, over_limit_fen,
        pre_self_paid_fen, in_scope_fen, deductible_fen, basic_fen, critical_illness_fen,
        medical_assistance_fen, charity_fen, backstop_fen, patient_pays_fen, hospital_bears_fen,
        result, trace, accumulators_after, contribution)
    VALUES (p_settlement_id, p_hospital_id, p_claim_id, p_claim_hash, p_request_body, p_key_id,
        'settled', p_at, p_person_id, p_scheme, p_category, p_visit_type, p_admitted, p_discharged,
        p_year, p_schedule_version, p_pathway, p_disease_group, p_amounts[1], p_amounts[2],
        p_amounts[3], p_amounts[4], p_amounts[5], p_amounts[6], p_amounts[7], p_amounts[8],
        p_amounts[9], p_amounts[10], p_amounts[11], p_amounts[12], p_amounts[13],
        p_result, p_trace, p_accumulators_after, p_contribution)
    RETURNING seq INTO settlement_seq;

    UPDATE person_year_accumulators SET updated_at = p_at,{adds}
    WHERE person_id = p_person_id AND policy_year = p_year;
    INSERT INTO person_year_charity AS c (person_id, policy_year, fund_id, paid)
        SELECT p_person_id, p_year, f, amount FROM unnest(p_charity_funds, p_charity_amounts) AS v(f, amount)
        WHERE amount <> 0
    ON CONFLICT (person_id, policy_year, fund_id) DO UPDATE SET paid = c.paid + EXCLUDED.paid;

    FOR i IN 1 .. coalesce(array_length(p_pool_funds, 1), 0) LOOP  -- fund_id order (the caller sorts)
        IF p_pool_amounts[i] IS NULL OR p_pool_expect[i] IS NOT NULL THEN
            -- the pool decided the amount: its exact use must be the snapshot's. Spent (pays 0):
            -- every shard FOR SHARE, side by side with other such claims. Takes what was left:
            -- every shard FOR UPDATE, then shard 0 takes the draw and the allowances are spread anew.
            PERFORM pool_shards_ensure(p_pool_funds[i], p_year, p_pool_limits[i], p_shards);
            IF p_pool_amounts[i] IS NULL THEN
                SELECT sum(used) INTO v_used FROM (SELECT used FROM fund_pools
                    WHERE fund_id = p_pool_funds[i] AND policy_year = p_year ORDER BY shard FOR SHARE) s;
            ELSE
                SELECT sum(used) INTO v_used FROM (SELECT used FROM fund_pools
                    WHERE fund_id = p_pool_funds[i] AND policy_year = p_year ORDER BY shard FOR UPDATE) s;
            END IF;
            IF coalesce(v_used, 0) <> p_pool_expect[i] THEN
                RAISE EXCEPTION USING ERRCODE = 'SE409', MESSAGE = 'counter_moved', DETAIL = 'pool ' || p_pool_funds[i];
            END IF;
            IF p_pool_amounts[i] IS NOT NULL THEN
                UPDATE fund_pools SET used = used + p_pool_amounts[i], allowance = allowance + p_pool_amounts[i]
                    WHERE fund_id = p_pool_funds[i] AND policy_year = p_year AND shard = 0;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'pool % / % has no shard 0', p_pool_funds[i], p_year;
                END IF;
                PERFORM pool_rebalance(p_pool_funds[i], p_year, p_pool_limits[i]);
            END IF;
        ELSE
            -- the claim paid less than the pool had left: any shard whose allowance still has room
            -- for the draw proves the pool does, provided the allowances were spread for this
            -- claim's pool (``pool``; they add up to it): a free shard first, else wait for one.
            -- (A fund-year whose schedule versions differ in pool size, or rows from before the
            -- shards, go the locked way, which spreads them anew for its own pool.)
            v_shard := NULL;
            FOR attempt IN 1 .. 2 LOOP
                SELECT shard INTO v_shard FROM fund_pools
                    WHERE fund_id = p_pool_funds[i] AND policy_year = p_year
                      AND (p_pool_limits[i] IS NULL OR (pool = p_pool_limits[i] AND used + p_pool_amounts[i] <= allowance))
                    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
                IF NOT FOUND THEN
                    SELECT shard INTO v_shard FROM fund_pools
                        WHERE fund_id = p_pool_funds[i] AND policy_year = p_year
                          AND (p_pool_limits[i] IS NULL OR (pool = p_pool_limits[i] AND used + p_pool_amounts[i] <= allowance))
                        ORDER BY shard LIMIT 1 FOR UPDATE;
                END IF;
                EXIT WHEN v_shard IS NOT NULL OR attempt = 2;
                -- none: the fund-year's first draw creates its shards
                PERFORM pool_shards_ensure(p_pool_funds[i], p_year, p_pool_limits[i], p_shards);
            END LOOP;
            -- (not FOUND: a FOR loop sets FOUND itself when it ends)
            IF v_shard IS NULL THEN  -- no shard has room for it (the pool may): the locked way spreads them anew
                RAISE EXCEPTION USING ERRCODE = 'SE410', MESSAGE = 'counter_needs_lock', DETAIL = 'pool ' || p_pool_funds[i];
            END IF;
            UPDATE fund_pools SET used = used + p_pool_amounts[i]
                WHERE fund_id = p_pool_funds[i] AND policy_year = p_year AND shard = v_shard;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'pool % / % shard % vanished under its lock', p_pool_funds[i], p_year, v_shard;
            END IF;
        END IF;
    END LOOP;

    event_seq := nextval(pg_get_serial_sequence('settlement_events', 'seq'));
    INSERT INTO settlement_events (seq, settlement_seq, kind, at, key_id)
        VALUES (event_seq, settlement_seq, 'settled', p_at, p_key_id);
    INSERT INTO ledger_entries (settlement_seq, event_seq, kind, hospital_id, layer, fund, amount_fen,
        business_date, at)
        SELECT settlement_seq, event_seq, 'settled', p_hospital_id, v.layer, v.fund, v.amount, p_day, p_at
        FROM unnest(p_ledger_layers, p_ledger_funds, p_ledger_amounts) WITH ORDINALITY AS v(layer, fund, amount, n)
        ORDER BY v.n;
END
"""

# A reversal as one statement: the settlement row FOR UPDATE (a second reversal waits, then finds
# it reversed), the person-year row FOR UPDATE, the contribution taken back out, the pools given back
# in fund_id order (the reversed event numbered under their locks), the negating ledger entries.
# outcome: 'not_found' (absent, or another hospital's when p_hospital_id is given), 'already', 'reversed'.
_REVERSE = r"""
DECLARE
    v settlements%ROWTYPE;
    v_py json;
    v_event bigint;
    r record;
BEGIN
    SELECT * INTO v FROM settlements WHERE settlement_id = p_settlement_id FOR UPDATE;
    IF NOT FOUND OR (p_hospital_id IS NOT NULL AND v.hospital_id <> p_hospital_id) THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    settlement_seq := v.seq;
    IF v.status = 'reversed' THEN
        outcome := 'already';
        RETURN;
    END IF;
    v_py := v.contribution -> 'person_year';
    UPDATE person_year_accumulators SET updated_at = p_at,{subtracts}
    WHERE person_id = v.person_id AND policy_year = v.policy_year;
    FOR r IN SELECT key AS fund, value::bigint AS amount FROM json_each_text(v_py -> 'charity_paid')
            WHERE value::bigint <> 0 ORDER BY key COLLATE "C" LOOP
        UPDATE person_year_charity SET paid = paid - r.amount
            WHERE person_id = v.person_id AND policy_year = v.policy_year AND fund_id = r.fund;
    END LOOP;
    UPDATE settlements SET status = 'reversed', reversed_at = p_at WHERE seq = v.seq;
    FOR r IN SELECT key AS fund, value::bigint AS amount FROM json_each_text(v.contribution -> 'pool_used')
            WHERE value::bigint <> 0 ORDER BY key COLLATE "C" LOOP
        UPDATE fund_pools SET used = used - r.amount  -- shard 0: its room grows, the allowances still add up
            WHERE fund_id = r.fund AND policy_year = v.policy_year AND shard = 0;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pool % / % of settlement seq % is missing', r.fund, v.policy_year, v.seq;
        END IF;
    END LOOP;
    v_event := nextval(pg_get_serial_sequence('settlement_events', 'seq'));
    INSERT INTO settlement_events (seq, settlement_seq, kind, at, key_id, reason)
        VALUES (v_event, v.seq, 'reversed', p_at, p_key_id, p_reason);
    INSERT INTO ledger_entries (settlement_seq, event_seq, kind, hospital_id, layer, fund, amount_fen,
        business_date, at)
        SELECT v.seq, v_event, 'reversed', v.hospital_id, l.layer, l.fund, -l.amount_fen, p_day, p_at
        FROM ledger_entries l WHERE l.settlement_seq = v.seq AND l.kind = 'settled' ORDER BY l.id;
    outcome := 'reversed';
END
"""

__all__ = ["counter_reverse_body", "counter_settle_body", "refresh", "statements"]
