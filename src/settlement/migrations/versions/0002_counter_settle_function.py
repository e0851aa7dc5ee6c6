# ruff: noqa: E501
"""PostgreSQL: the counter's write units as functions, so a settlement or a reversal commits in one round trip.

settlement.service.settlements.pgcounter calls ``counter_settle`` as a single
autocommit statement after the engine has run on a snapshot read without locks.
The function takes the locks, checks that the snapshot still holds, writes
everything and returns; the statement's own commit releases the locks. If the
snapshot no longer holds it raises ``counter_moved`` (SQLSTATE SE409) and
nothing at all is written: the caller reads again.

What it checks, in lock order (person-year row, then pool rows by fund_id —
the order of every other writer, so no deadlock cycles):

- the person-year row, created if absent and locked FOR UPDATE, holds exactly
  the totals of the snapshot, and the person's charity rows (only written under
  that lock) too: the engine's result depends on those numbers only;
- a pool the claim found spent (it pays 0 from it; ``expect`` only): locked
  FOR SHARE, its use must be the snapshot's; the share lock keeps it so to the
  commit, and many such claims hold it at once;
- a pool the claim draws on (``amount`` only): ``used + amount <= limit``,
  added under the row lock (the engine paid less than the pool had left, so
  the amount is exact for any use that leaves room for it);
- a pool that decided the amount (the claim takes what was left; ``amount``
  and ``expect``): added only if its use is still the snapshot's.

Then the settled event takes its number (under the pool locks: event order is
commit order on every pool it touches) and the ledger entries are written.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 03:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POOL_SHARDS_ENSURE = r"""
CREATE FUNCTION pool_shards_ensure(p_fund text, p_year integer, p_limit bigint, p_shards integer)
RETURNS void LANGUAGE sql AS $fn$
    -- a fund-year's first touch creates its shards, the pool split evenly over their allowances
    -- (none for an unlimited pool); a fund-year that has rows is left as it is
    INSERT INTO fund_pools (fund_id, policy_year, shard, used, allowance, pool)
    SELECT p_fund, p_year, s, 0,
        CASE WHEN p_limit IS NULL THEN NULL ELSE p_limit / p_shards + CASE WHEN s = 0 THEN p_limit % p_shards ELSE 0 END END,
        p_limit
    FROM generate_series(0, p_shards - 1) AS s
    WHERE NOT EXISTS (SELECT 1 FROM fund_pools WHERE fund_id = p_fund AND policy_year = p_year)
    ON CONFLICT (fund_id, policy_year, shard) DO NOTHING
$fn$
"""

# The caller holds every shard of the fund-year FOR UPDATE. What is left of the pool is spread over
# the shards' allowances (each allowance ≥ its use), so that they add up to the pool again.
POOL_REBALANCE = r"""
CREATE FUNCTION pool_rebalance(p_fund text, p_year integer, p_limit bigint)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v_used bigint;
    v_shards integer;
    v_room bigint;
BEGIN
    IF p_limit IS NULL THEN
        RETURN;
    END IF;
    SELECT sum(used), count(*) INTO v_used, v_shards FROM fund_pools WHERE fund_id = p_fund AND policy_year = p_year;
    v_room := p_limit - v_used;
    IF v_room < 0 THEN
        RAISE EXCEPTION 'pool % / % overdrawn: % used of %', p_fund, p_year, v_used, p_limit;
    END IF;
    UPDATE fund_pools SET pool = p_limit,
        allowance = used + v_room / v_shards + CASE WHEN shard = 0 THEN v_room % v_shards ELSE 0 END
        WHERE fund_id = p_fund AND policy_year = p_year;
END
$fn$
"""

COUNTER_SETTLE = r"""
CREATE FUNCTION counter_settle(
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
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_totals bigint[];
    v_charity text[];
    v_used bigint;
    v_shard smallint;
    i integer;
    attempt integer;
BEGIN
    INSERT INTO person_year_accumulators AS a (person_id, policy_year, basic_paid_inpatient,
        basic_paid_outpatient, basic_paid_chronic_outpatient, critical_base, critical_paid,
        assistance_base, assistance_paid)
    VALUES (p_person_id, p_year, 0, 0, 0, 0, 0, 0, 0)
    ON CONFLICT (person_id, policy_year) DO UPDATE SET updated_at = a.updated_at
    RETURNING ARRAY[a.basic_paid_inpatient, a.basic_paid_outpatient, a.basic_paid_chronic_outpatient,
        a.critical_base, a.critical_paid, a.assistance_base, a.assistance_paid] INTO v_totals;
    IF v_totals IS DISTINCT FROM p_expect_totals THEN
        RAISE EXCEPTION USING ERRCODE = 'SE409', MESSAGE = 'counter_moved', DETAIL = 'person-year totals';
    END IF;
    SELECT coalesce(array_agg(c.fund_id || ':' || c.paid ORDER BY c.fund_id COLLATE "C"), '{}') INTO v_charity
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

    UPDATE person_year_accumulators SET updated_at = p_at,
        basic_paid_inpatient = basic_paid_inpatient + p_delta_totals[1],
        basic_paid_outpatient = basic_paid_outpatient + p_delta_totals[2],
        basic_paid_chronic_outpatient = basic_paid_chronic_outpatient + p_delta_totals[3],
        critical_base = critical_base + p_delta_totals[4],
        critical_paid = critical_paid + p_delta_totals[5],
        assistance_base = assistance_base + p_delta_totals[6],
        assistance_paid = assistance_paid + p_delta_totals[7]
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
$fn$
"""

# A reversal as one statement: the settlement row FOR UPDATE (a second reversal waits, then finds
# it reversed), the person-year row FOR UPDATE, the contribution taken back out, the pools given back
# in fund_id order (the reversed event numbered under their locks), the negating ledger entries.
# outcome: 'not_found' (absent, or another hospital's when p_hospital_id is given), 'already', 'reversed'.
COUNTER_REVERSE = r"""
CREATE FUNCTION counter_reverse(
    p_settlement_id text, p_hospital_id text, p_at timestamptz, p_key_id text, p_reason text, p_day date,
    OUT outcome text, OUT settlement_seq bigint
) LANGUAGE plpgsql AS $fn$
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
    UPDATE person_year_accumulators SET updated_at = p_at,
        basic_paid_inpatient = basic_paid_inpatient - coalesce((v_py -> 'basic_paid' ->> 'inpatient')::bigint, 0),
        basic_paid_outpatient = basic_paid_outpatient - coalesce((v_py -> 'basic_paid' ->> 'outpatient')::bigint, 0),
        basic_paid_chronic_outpatient = basic_paid_chronic_outpatient
            - coalesce((v_py -> 'basic_paid' ->> 'chronic_outpatient')::bigint, 0),
        critical_base = critical_base - (v_py ->> 'critical_base')::bigint,
        critical_paid = critical_paid - (v_py ->> 'critical_paid')::bigint,
        assistance_base = assistance_base - (v_py ->> 'assistance_base')::bigint,
        assistance_paid = assistance_paid - (v_py ->> 'assistance_paid')::bigint
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
$fn$
"""
REVERSE_SIGNATURE = "counter_reverse(text, text, timestamptz, text, text, date)"

SIGNATURE = (
    "counter_settle(text, text, text, text, text, text, timestamptz, text, text, text, text, date, date,"
    " integer, text, text, text, bigint[], json, json, json, json, bigint[], bigint[], text[], text[],"
    " bigint[], text[], bigint[], bigint[], bigint[], date, text[], text[], bigint[], integer)"
)


# A settlement row carries ~5 KB of JSON and text (request, result, trace): stored compressed
# (TOAST). lz4 compresses several times faster than the default pglz for a similar size here,
# and every settlement pays it inside its write (docs/PERFORMANCE.md).
COMPRESSED = ("request_body", "result", "trace", "accumulators_after", "contribution")


def upgrade() -> None:
    # pool shards (funds.models): a fund-year is several rows, each within its allowance
    with op.batch_alter_table("fund_pools") as batch:
        batch.add_column(sa.Column("shard", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("allowance", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("pool", sa.BigInteger(), nullable=True))
        batch.drop_constraint(op.f("ck_fund_pools_non_negative"), type_="check")
        batch.drop_constraint(op.f("pk_fund_pools"), type_="primary")
        batch.create_primary_key(op.f("pk_fund_pools"), ["fund_id", "policy_year", "shard"])
        batch.create_check_constraint(op.f("ck_fund_pools_within_allowance"), "allowance IS NULL OR used <= allowance")
    if op.get_bind().dialect.name != "postgresql":
        return  # the embedded SQLite default keeps the portable ORM path
    op.execute(POOL_SHARDS_ENSURE)
    op.execute(POOL_REBALANCE)
    op.execute(COUNTER_SETTLE)
    op.execute(COUNTER_REVERSE)
    for column in COMPRESSED:
        op.execute(f"ALTER TABLE settlements ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _downgrade_shards()
        return
    for column in COMPRESSED:
        op.execute(f"ALTER TABLE settlements ALTER COLUMN {column} SET COMPRESSION default")
    op.execute(f"DROP FUNCTION IF EXISTS {REVERSE_SIGNATURE}")
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    op.execute("DROP FUNCTION IF EXISTS pool_rebalance(text, integer, bigint)")
    op.execute("DROP FUNCTION IF EXISTS pool_shards_ensure(text, integer, bigint, integer)")
    _downgrade_shards()


def _downgrade_shards() -> None:
    # the shards of a fund-year folded back into one row
    op.execute(
        "CREATE TEMPORARY TABLE pool_totals AS SELECT fund_id, policy_year, sum(used) AS used"
        " FROM fund_pools GROUP BY fund_id, policy_year"
    )
    op.execute("DELETE FROM fund_pools")
    with op.batch_alter_table("fund_pools") as batch:
        batch.drop_constraint(op.f("ck_fund_pools_within_allowance"), type_="check")
        batch.drop_constraint(op.f("pk_fund_pools"), type_="primary")
        batch.drop_column("pool")
        batch.drop_column("allowance")
        batch.drop_column("shard")
        batch.create_primary_key(op.f("pk_fund_pools"), ["fund_id", "policy_year"])
        batch.create_check_constraint(op.f("ck_fund_pools_non_negative"), "used >= 0")
    op.execute("INSERT INTO fund_pools (fund_id, policy_year, used) SELECT fund_id, policy_year, used FROM pool_totals")
    op.execute("DROP TABLE pool_totals")
