"""After a run: is every settlement single, and does every total still equal its ledger?

Read-only SQL against the service's tables (run while the service is idle):

- no (hospital_id, claim_id) settled twice, and no more settlements of the run
  than distinct claims the load generator sent to settle;
- each pool row (the charity funds' and the emergency relief fund's):
  used = Σ what the fund paid on settled (not reversed)
  settlements of that year (settled entries minus reversal entries), and
  used ≤ the fund's annual pool;
- each person-year row and person-charity row: equal to the sum of the
  contributions of that person-year's settled settlements.
"""

from __future__ import annotations

from typing import Any

import psycopg

from .seed import libpq_url

POOLS = """
WITH ledger AS (
    SELECT l.fund, s.policy_year, sum(l.amount_fen) AS paid
    FROM ledger_entries l JOIN settlements s ON s.seq = l.settlement_seq
    WHERE l.layer IN ('charity', 'emergency_relief') GROUP BY 1, 2
), pools AS (  -- a fund-year is the sum of its shards (service.funds.models)
    SELECT fund_id, policy_year, sum(used) AS used, sum(allowance) AS allowances, count(*) AS shards,
        count(*) FILTER (WHERE allowance IS NOT NULL AND used > allowance) AS over
    FROM fund_pools GROUP BY 1, 2
)
SELECT p.fund_id, p.policy_year, p.used, coalesce(l.paid, 0), p.allowances, p.shards, p.over
FROM pools p LEFT JOIN ledger l ON l.fund = p.fund_id AND l.policy_year = p.policy_year
UNION ALL
SELECT l.fund, l.policy_year, 0, l.paid, NULL, 0, 0 FROM ledger l
WHERE NOT EXISTS (SELECT 1 FROM fund_pools p WHERE p.fund_id = l.fund AND p.policy_year = l.policy_year)
"""

PERSON_YEARS = """
WITH c AS (
    SELECT person_id, policy_year,
        sum((contribution->'person_year'->'basic_paid'->>'inpatient')::bigint) AS bi,
        sum((contribution->'person_year'->'basic_paid'->>'outpatient')::bigint) AS bo,
        sum((contribution->'person_year'->'basic_paid'->>'chronic_outpatient')::bigint) AS bc,
        sum((contribution->'person_year'->>'critical_base')::bigint) AS cb,
        sum((contribution->'person_year'->>'critical_paid')::bigint) AS cp,
        sum((contribution->'person_year'->>'assistance_base')::bigint) AS ab,
        sum((contribution->'person_year'->>'assistance_paid')::bigint) AS ap
    FROM settlements WHERE status = 'settled' GROUP BY 1, 2
)
SELECT count(*) FROM person_year_accumulators a LEFT JOIN c USING (person_id, policy_year)
WHERE a.basic_paid_inpatient <> coalesce(c.bi, 0) OR a.basic_paid_outpatient <> coalesce(c.bo, 0)
   OR a.basic_paid_chronic_outpatient <> coalesce(c.bc, 0) OR a.critical_base <> coalesce(c.cb, 0)
   OR a.critical_paid <> coalesce(c.cp, 0) OR a.assistance_base <> coalesce(c.ab, 0)
   OR a.assistance_paid <> coalesce(c.ap, 0)
"""

PERSON_CHARITY = """
WITH c AS (
    SELECT s.person_id, s.policy_year, f.key AS fund_id, sum(f.value::bigint) AS paid
    FROM settlements s, json_each_text(s.contribution::json->'person_year'->'charity_paid') f
    WHERE s.status = 'settled' GROUP BY 1, 2, 3
)
SELECT count(*) FROM person_year_charity p LEFT JOIN c USING (person_id, policy_year, fund_id)
WHERE p.paid <> coalesce(c.paid, 0)
"""


def annual_pools(region: Any = None) -> dict[tuple[str, int], int | None]:
    """(fund, policy year) → the annual pool in fen of the version in force that year (None: no limit),
    in the region folder the service ran with (default: the bundled one)."""
    import datetime as dt

    from settlement.schedules import load_region
    from settlement.service.config import bundled_schedules

    schedules = load_region(region or bundled_schedules())
    pools: dict[tuple[str, int], int | None] = {}
    for year in range(2015, 2031):
        index = schedules.index_for(dt.date(year, 12, 31))
        if index < 0:
            continue
        version = schedules.versions[index]
        for fund in version.charity_funds:
            pools[(fund.id, year)] = fund.annual_pool_fen
        if version.emergency_relief is not None:
            pools[("emergency_relief", year)] = version.emergency_relief.annual_pool_fen
    return pools


def run_checks(database_url: str, run_prefix: str, settle_sent: int, schedules: Any = None) -> dict[str, Any]:
    problems: list[str] = []
    limits = annual_pools(schedules)
    with psycopg.connect(libpq_url(database_url)) as conn:
        dup = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM settlements GROUP BY hospital_id, claim_id HAVING count(*) > 1) d"
        ).fetchone()[0]
        if dup:
            problems.append(f"{dup} (hospital_id, claim_id) pairs are settled more than once")
        stored, reversed_ = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'reversed') FROM settlements WHERE claim_id LIKE %s",
            (run_prefix + "%",),
        ).fetchone()
        if stored > settle_sent:
            problems.append(f"{stored} settlements stored for {settle_sent} distinct claims sent to settle")
        pools = []
        for fund, year, used_raw, paid_raw, allowances, shards, over in conn.execute(POOLS):
            used, paid = int(used_raw), int(paid_raw)
            limit = limits.get((fund, year))
            pools.append(
                {"fund": fund, "policy_year": year, "used_fen": used, "ledger_fen": paid, "pool_fen": limit,
                 "shards": int(shards)}
            )
            if used != paid:
                problems.append(f"pool {fund}/{year}: used {used} fen, ledger says {paid}")
            if limit is not None and used > limit:
                problems.append(f"pool {fund}/{year}: used {used} fen exceeds the pool {limit}")
            if limit is not None and allowances is not None and int(allowances) != limit:
                problems.append(f"pool {fund}/{year}: the shards' allowances add up to {allowances}, not {limit}")
            if over:
                problems.append(f"pool {fund}/{year}: {over} shard(s) above their allowance")
        bad_years = conn.execute(PERSON_YEARS).fetchone()[0]
        if bad_years:
            problems.append(f"{bad_years} person-year rows differ from the sum of their settlements")
        bad_charity = conn.execute(PERSON_CHARITY).fetchone()[0]
        if bad_charity:
            problems.append(f"{bad_charity} person-charity rows differ from the sum of their settlements")
        person_years = conn.execute("SELECT count(*) FROM person_year_accumulators").fetchone()[0]
    return {
        "double_settlements": int(dup) + max(0, stored - settle_sent),
        "stored_settlements": int(stored),
        "reversed_settlements": int(reversed_),
        "settle_sent": settle_sent,
        "person_years": int(person_years),
        "pools": pools,
        "problems": problems,
    }


HALF_WRITTEN = """
SELECT s.hospital_id, s.claim_id, s.status FROM settlements s
WHERE NOT EXISTS (SELECT 1 FROM settlement_events e WHERE e.settlement_seq = s.seq AND e.kind = 'settled')
   OR (s.status = 'reversed') <> EXISTS (
        SELECT 1 FROM settlement_events e WHERE e.settlement_seq = s.seq AND e.kind = 'reversed')
   OR s.total_fen <> (SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries l
                      WHERE l.settlement_seq = s.seq AND l.kind = 'settled')
   OR (CASE WHEN s.status = 'reversed' THEN -s.total_fen ELSE 0 END) <> (
        SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries l
        WHERE l.settlement_seq = s.seq AND l.kind = 'reversed')
"""


def half_written(database_url: str) -> list[str]:
    """Settlements written in part: without their 'settled' event, a status without its event, or a
    ledger that does not add up to the total (settled) or its negation (reversed)."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        return [f"{h}/{c} ({status})" for h, c, status in conn.execute(HALF_WRITTEN)]


def sequential_replay(database_url: str, tables: Any) -> dict[str, Any]:
    """Every settlement and reversal replayed one by one in commit order (the events' seq) through
    the same engine: each stored result must be the engine's on the totals and pools left by the
    ones before it, and the person-year, charity and pool rows at the end the replay's.

    The same replay as tests/service/test_concurrency.py's, on any database.
    """
    import json
    from collections import defaultdict

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from settlement.claims import validate_claim
    from settlement.engine.state import PersonYearTotals
    from settlement.service.accumulators.models import PersonCharity, PersonYear
    from settlement.service.config import Settings
    from settlement.service.db import make_engine
    from settlement.service.funds.models import FundPool
    from settlement.service.settlements.counter import compute, prepare
    from settlement.service.settlements.models import Settlement, SettlementEvent

    problems: list[str] = []
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        with Session(engine) as session:
            by_seq = {row.seq: row for row in session.scalars(select(Settlement))}
            events = session.execute(
                select(SettlementEvent.settlement_seq, SettlementEvent.kind).order_by(SettlementEvent.seq)
            ).all()
            db_person = {
                (r.person_id, r.policy_year): (
                    r.basic_paid_inpatient, r.basic_paid_outpatient, r.basic_paid_chronic_outpatient,
                    r.critical_base, r.critical_paid, r.assistance_base, r.assistance_paid,
                )
                for r in session.scalars(select(PersonYear))
            }
            db_charity = {
                (r.person_id, r.policy_year, r.fund_id): r.paid for r in session.scalars(select(PersonCharity))
            }
            db_pools: dict[tuple[str, int], int] = defaultdict(int)
            for r in session.scalars(select(FundPool)):
                db_pools[(r.fund_id, r.policy_year)] += r.used
    finally:
        engine.dispose()

    totals: dict[tuple[str, int], PersonYearTotals] = defaultdict(PersonYearTotals)
    pools: dict[int, dict[str, int]] = defaultdict(dict)
    for seq, kind in events:
        row = by_seq[seq]
        year_key = (row.person_id, row.policy_year)
        if kind == "settled":
            cc = prepare(validate_claim(json.loads(row.request_body)), tables, row.scheme, row.category)
            comp = compute(cc, totals[year_key], dict(pools[row.policy_year]))
            stored = {name: getattr(row, f"{name}_fen") for name in comp.fen}
            if comp.fen != stored or comp.contribution_json() != row.contribution:
                problems.append(f"{row.hospital_id}/{row.claim_id}: stored {stored}, replay {comp.fen}")
            totals[year_key] = comp.after
            pools[row.policy_year].update(comp.pools_after)
        else:
            totals[year_key] = totals[year_key].minus(PersonYearTotals(**row.contribution["person_year"]))
            for fund, amount in row.contribution["pool_used"].items():
                pools[row.policy_year][fund] -= amount
    for key, t in totals.items():
        want = (t.basic_paid["inpatient"], t.basic_paid["outpatient"], t.basic_paid["chronic_outpatient"],
                t.critical_base, t.critical_paid, t.assistance_base, t.assistance_paid)
        if db_person.get(key, (0,) * 7) != want:
            problems.append(f"person-year {key}: stored {db_person.get(key)}, replay {want}")
        for fund, paid in t.charity_paid.items():
            if db_charity.get((*key, fund), 0) != paid:
                problems.append(f"charity {key} {fund}: stored {db_charity.get((*key, fund), 0)}, replay {paid}")
    for year, used in pools.items():
        for fund, amount in used.items():
            if db_pools.get((fund, year), 0) != amount:
                problems.append(f"pool {fund}/{year}: stored {db_pools.get((fund, year), 0)}, replay {amount}")
    return {"events": len(events), "settlements": len(by_seq), "problems": problems}
