"""Small pieces of the counter's PostgreSQL path that the end-to-end tests do not pin down alone."""

from __future__ import annotations

import dataclasses

from service_helpers import example

from settlement.claims import validate_claim
from settlement.engine.state import PersonYearTotals
from settlement.service.settlements.counter import compute, prepare
from settlement.service.settlements.pgcounter import _bigints


def test_contribution_json_is_the_contribution_as_stored_before(service_tables):
    claim = validate_claim(example("EX-01"))
    before = PersonYearTotals(critical_base=1_000, charity_paid={"poverty_relief": 500})
    comp = compute(prepare(claim, service_tables, "resident", "registered_poor"), before, {"poverty_relief": 7})
    stored = comp.contribution_json()
    assert stored["person_year"] == dataclasses.asdict(comp.contribution)
    assert stored["pool_used"] == comp.pool_delta
    assert PersonYearTotals(**stored["person_year"]) == comp.contribution  # what a reversal reads back


def test_bigint_array_literals():
    assert _bigints([1, -2, None, 10**15]) == "{1,-2,NULL,1000000000000000}"
    assert _bigints([]) == "{}"


def test_allowances_that_do_not_add_up_to_the_claims_pool_send_it_the_locked_way(
    client, auth, app, using_postgres, service_tables
):
    # a fund-year whose shards' allowances add up to another pool size (a schedule version with
    # another pool, or rows from before the shards) must not be drawn on shard by shard: the claim
    # goes the locked way, which spreads the allowances anew so that they add up to its pool
    import copy

    import pytest
    from prometheus_client import REGISTRY
    from service_helpers import register
    from sqlalchemy import func, select, update

    from settlement.service.funds.models import FundPool
    from settlement.service.funds.repository import POOL_SHARDS

    if not using_postgres:
        pytest.skip("pool shards are PostgreSQL's")
    first = example("EX-01")
    register(client, auth["reviewer"], first["patient"]["person_id"], valid_from="2010-01-01")
    settled = client.post("/v1/settlements", json=first, headers=auth["hospital"])
    assert settled.status_code == 201
    version = service_tables.schedules.versions[0]
    fund = next(f for f in version.charity_funds if f.id == "poverty_relief")
    db = app.state.ctx.db

    def allowances() -> tuple[int, int, int]:
        with db.read() as session:
            where = (FundPool.fund_id == fund.id, FundPool.policy_year == 2018)
            n, total, used = session.execute(
                select(func.count(), func.sum(FundPool.allowance), func.sum(FundPool.used)).where(*where)
            ).one()
            return int(n), int(total), int(used)

    assert allowances()[:2] == (POOL_SHARDS, fund.annual_pool_fen)
    with db.write() as session:  # as if spread for a pool 1,000 yuan larger (another version's)
        where = (FundPool.fund_id == fund.id, FundPool.policy_year == 2018)
        session.execute(update(FundPool).where(*where).values(pool=fund.annual_pool_fen + 100_000))
        session.execute(
            update(FundPool).where(*where, FundPool.shard == 1).values(allowance=FundPool.allowance + 100_000)
        )
        session.commit()
    locked = REGISTRY.get_sample_value("settlement_pool_paths_total", {"path": "locked"}) or 0.0
    second = copy.deepcopy(first)
    second["claim_id"] = "EX-01-second"
    response = client.post("/v1/settlements", json=second, headers=auth["hospital"])
    assert response.status_code == 201, response.text
    assert float(response.json()["charity_by_fund"]["poverty_relief"]) > 0  # it did draw on the pool
    assert REGISTRY.get_sample_value("settlement_pool_paths_total", {"path": "locked"}) == locked + 1
    n, total, used = allowances()
    assert (n, total) == (POOL_SHARDS, fund.annual_pool_fen) and used <= total
    drawn = [r.json()["charity_by_fund"]["poverty_relief"].replace(".", "") for r in (settled, response)]
    assert used == sum(int(d) for d in drawn)  # both draws are in the pool's shards, nothing else
    with db.read() as session:
        assert set(session.scalars(select(FundPool.pool).where(FundPool.fund_id == fund.id))) == {fund.annual_pool_fen}


def test_a_claim_taking_what_a_pool_has_left_draws_exactly_that(client, auth, app, using_postgres, service_tables):
    # the pool decides the amount: pgcounter writes it only on the same pool use (path `last`), under
    # every shard's lock, and spreads the allowances anew; the pool ends exactly full
    import pytest
    from prometheus_client import REGISTRY
    from service_helpers import register
    from sqlalchemy import func, select, update

    from settlement.service.funds.models import FundPool

    if not using_postgres:
        pytest.skip("pool shards are PostgreSQL's")
    claim = example("EX-01")
    register(client, auth["reviewer"], claim["patient"]["person_id"], valid_from="2010-01-01")
    fund = next(f for f in service_tables.schedules.versions[0].charity_funds if f.id == "poverty_relief")
    db = app.state.ctx.db
    opener = dict(claim, claim_id="EX-01-opener")
    assert client.post("/v1/settlements", json=opener, headers=auth["hospital"]).status_code == 201
    left = 10_000  # 100.00 yuan left of the pool: less than the claim's charity (537.45)
    with db.write() as session:  # every shard nearly spent, the allowances still adding up to the pool
        where = (FundPool.fund_id == fund.id, FundPool.policy_year == 2018)
        session.execute(update(FundPool).where(*where).values(used=FundPool.allowance))
        session.execute(update(FundPool).where(*where, FundPool.shard == 0).values(used=FundPool.allowance - left))
        session.commit()
    last = REGISTRY.get_sample_value("settlement_pool_paths_total", {"path": "last"}) or 0.0
    response = client.post("/v1/settlements", json=claim, headers=auth["hospital"])
    assert response.status_code == 201, response.text
    assert response.json()["charity_by_fund"]["poverty_relief"] == "100.00"
    assert REGISTRY.get_sample_value("settlement_pool_paths_total", {"path": "last"}) == last + 1
    with db.read() as session:
        used, allowances = session.execute(
            select(func.sum(FundPool.used), func.sum(FundPool.allowance)).where(FundPool.fund_id == fund.id)
        ).one()
    assert used == allowances == fund.annual_pool_fen


def test_the_write_names_counter_settles_arguments_as_the_database_declares_them(app, using_postgres):
    # pgcounter.WRITE calls counter_settle in named notation from WRITE_ARGS: every argument the
    # function takes, each under its name and type, so a change on either side fails here, not under load
    import pytest

    from settlement.service.settlements.pgcounter import WRITE_ARGS

    if not using_postgres:
        pytest.skip("counter_settle is PostgreSQL's")
    with app.state.ctx.db.counter() as conn:
        (declared,) = conn.execute(
            "SELECT pg_get_function_identity_arguments('counter_settle'::regproc)"
        ).fetchone()
    ours = ", ".join(f"p_{name} {kind.replace('timestamptz', 'timestamp with time zone')}" for name, kind in WRITE_ARGS)
    assert ours + ", OUT settlement_seq bigint, OUT event_seq bigint" == declared
